"""PHP date handling for Xano filters: date() formats, createFromFormat and strtotime. Instants
are integer milliseconds since the Unix epoch; `zones` holds time zones (`zone`), the
epoch-ms/local-time conversions and PHP's day, month and zone-abbreviation names, `formatting`
date() (`format_ms`), `fields` the wall-clock field arithmetic the parsers share plus the
timestamp filters' helpers (`to_local`, `shift`), `relative` strtotime (`strtotime`), and
`parse` createFromFormat (`parse_format`).
"""

from __future__ import annotations

from daemon.expr.phpdate.fields import shift, to_local
from daemon.expr.phpdate.formatting import format_ms
from daemon.expr.phpdate.parse import parse_format
from daemon.expr.phpdate.relative import strtotime
from daemon.expr.phpdate.zones import zone

__all__ = ["format_ms", "parse_format", "shift", "strtotime", "to_local", "zone"]
