"""The resources a run shares: data sources, the HTTP client, the cache and the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.resources.cache import Cache
    from daemon.resources.db.base import DataSource
    from daemon.resources.http.client import HttpClient


@dataclass(slots=True)
class Resources:
    """Long-lived things runs share: opened once at start, reused across runs and reloads."""

    datasources: dict[str, DataSource] = field(default_factory=dict)
    default_datasource: str | None = None
    http: HttpClient | None = None
    cache: Cache | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    # Base URLs of named outside services, e.g. "email.resend" ([email] in the config).
    endpoints: Mapping[str, str] = field(default_factory=dict)
