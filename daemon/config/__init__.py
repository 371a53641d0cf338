"""config.toml and task files turned into validated specs, every problem with file and path.

No network and no database here: `settings` reads config.toml, `tasks` reads task files (JSON
with comments, TOML), `convert` turns raw values into typed msgspec specs.
"""
