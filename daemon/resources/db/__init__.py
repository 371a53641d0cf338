"""Data sources: one interface for the database steps, backed by asyncpg or aiosqlite."""
