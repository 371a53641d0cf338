"""The state store: run history, slot claims with leases, pause flags, retention, migrations.

`store` is the write side the scheduler talks to (claims, write-behind final states, leases,
retention); `sql` every statement by name with both dialects side by side; `queries` the read
side and `run_json`, the one run-row formatter; `migrations`, `dbclock` and `lock` the parts
around it. It imports resources and core only: the scheduler reaches it through `core.abc`.
"""
