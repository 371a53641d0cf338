"""Who may use the admin listener: the bearer token, dashboard sessions and CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import urlsplit

# Routes that answer without a token: probes (a load balancer has none) and the login form.
PUBLIC_ROUTES = frozenset({("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/login"),
                           ("POST", "/login")})  # fmt: skip
SESSION_COOKIE = "cronstack_session"
SESSION_TTL = 12 * 3600


class Sessions:
    """Stateless login sessions: `expiry.nonce.mac`, keyed by the token, so rotating the token
    logs everyone out and a restart does not. The CSRF token is a MAC of the session nonce."""

    def __init__(self, token: str, ttl: float = SESSION_TTL) -> None:
        self._key = hashlib.sha256(b"cronstack-session\0" + token.encode()).digest()
        self.ttl = ttl

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        payload = f"{int(time.time() + self.ttl)}.{secrets.token_hex(16)}"
        return f"{payload}.{self._mac(payload)}"

    def nonce(self, cookie: str | None) -> str | None:
        """The session's nonce if the cookie is genuine and unexpired, else None."""
        if not cookie or cookie.count(".") != 2:
            return None
        expiry, nonce, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac(f"{expiry}.{nonce}")):
            return None
        if not expiry.isdigit() or int(expiry) < time.time():
            return None
        return nonce

    def csrf(self, nonce: str) -> str:
        return self._mac(f"csrf\0{nonce}")[:32]


def safe_next(path: str) -> str:
    """Only same-site paths after login: never an open redirect."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//"):
        return "/"
    if path.startswith("/login"):
        return "/"
    return path
