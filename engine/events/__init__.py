"""The path of an event into the engine: ingest, the bus, the catalog."""
