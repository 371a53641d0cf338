"""Long-lived clients runs share, behind small interfaces: databases, HTTP, cache.

`db` holds the data source interface and its PostgreSQL (asyncpg) and SQLite (aiosqlite)
implementations; `http` the pooled aiohttp client and the private-network guard; `cache` the
memory and Redis backends of Data Caching.
"""
