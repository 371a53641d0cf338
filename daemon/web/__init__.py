"""The admin listener: health, metrics, the JSON API and the server-rendered dashboard."""
