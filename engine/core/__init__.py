"""The base every part stands on: clock, logs, metrics, storage, schema, the writer, migrations."""
