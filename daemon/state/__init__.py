"""The state store: run history, slot claims with leases, pause flags, retention, migrations."""
