"""Long-lived clients runs share, behind small interfaces: databases, HTTP, cache.

`db` holds the data source interface and its PostgreSQL (asyncpg) and SQLite (aiosqlite)
implementations; `http` the pooled aiohttp client and the private-network guard; `cache` the
interface and memory backend of Data Caching, `rediscache` its Redis backend. asyncpg and
redis-py are imported only by a process whose configuration uses them.
"""
