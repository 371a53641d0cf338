"""Secret tracking: every value known to be secret is replaced by `***` wherever text leaves us."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"
# Shorter values would shred unrelated text (a 2-letter secret matches half the log); real
# credentials are far longer.
MIN_LENGTH = 4
# Env values that are plainly configuration, not credentials: masking them would only turn
# every "true" in a trace into "***".
_NOT_SECRET = frozenset({"true", "false", "null", "none", "yes", "no", "on", "off"})


class SecretRegistry:
    """The secret strings of this process, with a fast `mask(text)`.

    Adding is rare (a new env value, header or URL password); masking runs for every log
    event, error and trace summary. So the set compiles into one regex alternation, rebuilt
    only when a new value arrives, and an empty registry costs one attribute read.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def __len__(self) -> int:
        return len(self._values)

    def add(self, value: Any) -> None:
        """Track a secret: the value itself and, for `scheme token` forms, the token alone."""
        if not isinstance(value, str) or len(value) < MIN_LENGTH:
            return
        if value in self._values:  # the common case: seen in an earlier run
            return
        new = [value]
        # "Bearer abc123": an echo of the token alone must be masked too.
        new.extend(p for p in value.split() if len(p) >= MIN_LENGTH and p != value)
        with self._lock:
            self._values.update(new)
            # Longest first, so a secret containing another is masked whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def add_env_value(self, value: Any) -> None:
        """Track a value read from `env` unless it is an obvious flag word."""
        if isinstance(value, str) and value.strip().lower() not in _NOT_SECRET:
            self.add(value)

    def add_url(self, url: str) -> None:
        """Track the userinfo of a URL that carries a password (`user:password`, and the password).

        A bare user name (`postgresql://root@host/db`) is not a credential; masking it would
        turn every "root" in paths and messages into `***` and make logs unreadable.
        """
        if "@" not in url:
            return
        try:
            parts = urlsplit(url)
        except ValueError:
            return
        if parts.password:
            self.add(parts.password)
            self.add(unquote(parts.password))
            self.add(parts.netloc.rsplit("@", 1)[0])

    def mask(self, text: str) -> str:
        """`text` with every tracked secret replaced by `***`."""
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def mask_value(self, value: Any) -> Any:
        """Mask strings anywhere inside a JSON-like value (dict keys too); returns a copy only
        where something changed shape, so clean values come back as they are."""
        if self._pattern is None:
            return value
        return self._mask(value)

    def _mask(self, value: Any) -> Any:
        t = type(value)
        if t is str:
            return self.mask(value)
        if isinstance(value, str):  # str subclasses (multidict's istr): plain text out
            return self.mask(str(value))
        if t is dict or isinstance(value, Mapping):
            return {self._mask(k): self._mask(v) for k, v in value.items()}
        if t is list or t is tuple:
            return [self._mask(v) for v in value]
        if isinstance(value, BaseException):
            return self.mask(str(value))
        return value


# One per process: secrets seen by any run must be masked in every log line, whoever writes it.
SECRETS = SecretRegistry()


def mask(text: str) -> str:
    """Mask with the process registry."""
    return SECRETS.mask(text)


def mask_value(value: Any) -> Any:
    """Mask a JSON-like value with the process registry."""
    return SECRETS.mask_value(value)


_SENSITIVE_EXACT = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"}
)


# `*-Key` headers that carry no secret: `Idempotency-Key` is where `task.slot_id` goes
# (docs/contract.md),
# and masking it would mask the slot and run ids wherever they are printed.
_NOT_SENSITIVE = frozenset({"idempotency-key", "x-idempotency-key"})


@lru_cache(maxsize=1024)
def is_secret_header(name: str) -> bool:
    """Authorization, Cookie, Proxy-Authorization, `*-Key`, `*-Token`, `*-Secret` headers
    (but not `Idempotency-Key`)."""
    lower = name.strip().lower()
    if lower in _NOT_SENSITIVE:
        return False
    return (
        lower in _SENSITIVE_EXACT
        or lower.endswith(("-key", "-token", "-secret", "_key", "_token", "_secret"))
        or lower in ("token", "secret", "password")
    )


class SecretEnv(Mapping[str, str]):
    """The `env` built-in: a read view of the environment that tracks each value it hands out.

    Registration happens on read, so only values a task actually uses become secrets (not the
    whole environment, which would mask "/usr/bin" in every line).
    """

    __slots__ = ("_env", "_registry")

    def __init__(self, env: Mapping[str, str], registry: SecretRegistry = SECRETS) -> None:
        self._env = env
        self._registry = registry

    def __getitem__(self, key: str) -> str:
        value = self._env[key]
        self._registry.add_env_value(value)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)
