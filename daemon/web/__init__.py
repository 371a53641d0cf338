"""The admin listener: health, metrics, the JSON API and the server-rendered dashboard.

`server` is the aiohttp app (routes and middleware), `auth` the token, sessions and CSRF,
`views` the cached task views, `dashboard` the HTML, `charts` its SVG pictures, `upcoming` the
next 24 h of fires they draw, `client` what the CLI's `--remote` uses.
"""
