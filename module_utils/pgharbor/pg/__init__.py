"""PostgreSQL itself, as every other room uses it: sessions with the fixed settings, catalog reads,
conninfo handling, the schema's dump sections, row hashing."""
