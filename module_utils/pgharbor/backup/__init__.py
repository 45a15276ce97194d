"""The logical backup on the DB host: its format and manifest, the tier-1 store, the pipeline,
the keys, taking, verifying, restoring, swapping in, and the audit log."""
