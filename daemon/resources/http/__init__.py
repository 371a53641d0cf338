"""Outbound HTTP: the shared aiohttp client and the private-network guard it resolves through."""
