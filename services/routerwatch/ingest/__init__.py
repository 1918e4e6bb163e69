"""The ingest service: Kafka -> validate -> dead-letter or store in ClickHouse, exactly once per event_id."""
