"""ClickHouse storage: one DSN for the embedded engine (chDB) or a server, migrations, row building."""
