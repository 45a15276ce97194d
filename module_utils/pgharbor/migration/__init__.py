"""Moving a database: preflight, freezing the source, copying, and comparing source and target."""
