"""Private-network guard: which addresses External API Request may reach, and a resolver that
only ever hands the connector addresses it checked."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from daemon.core.netpolicy import (
    BlockedAddressError,
    NetworkPolicy,
)


class _ResolverBlocked(OSError):
    """Raised inside the aiohttp resolver; carries the HttpError to surface to the step."""

    def __init__(self, error: BlockedAddressError) -> None:
        super().__init__(error.message)
        self.error = error


class GuardedResolver(AbstractResolver):
    """Resolves, then keeps only the addresses the policy allows: the connector dials exactly
    what was checked, so a DNS answer cannot change between the check and the connection.

    `overrides` maps host names to fixed addresses (tests; /etc/hosts-like pinning).
    """

    def __init__(
        self,
        policy: NetworkPolicy,
        overrides: Mapping[str, Sequence[str]] | None = None,
        exempt: Iterable[tuple[str, int]] = (),
    ) -> None:
        self.policy = policy
        self.overrides = {k.lower(): list(v) for k, v in (overrides or {}).items()}
        self.exempt = {(h.lower(), p) for h, p in exempt}  # the proxy: chosen by the operator
        self._inner: AbstractResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.lower().rstrip(".")
        fixed = self.overrides.get(name)
        if fixed is not None:
            results = [_result(host, addr, port) for addr in fixed]
        else:
            if self._inner is None:
                self._inner = DefaultResolver()
            results = await self._inner.resolve(host, port, family)
        if (name, port) in self.exempt or self.policy.host_allowed(name, port):
            return results
        allowed: list[ResolveResult] = []
        first: BlockedAddressError | None = None
        for res in results:
            try:
                self.policy.check_ip(ipaddress.ip_address(res["host"]), port, host=name)
            except BlockedAddressError as exc:
                first = first or exc
                continue
            allowed.append(res)
        if not allowed:
            assert first is not None
            raise _ResolverBlocked(first)
        return allowed

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def _result(host: str, addr: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return {
        "hostname": host,
        "host": addr,
        "port": port,
        "family": family,
        "proto": 0,
        "flags": socket.AI_NUMERICHOST,
    }


def blocked_cause(exc: BaseException) -> BlockedAddressError | None:
    """The guard's refusal hidden inside an aiohttp connection error, if that is what it is."""
    seen: Any = exc
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, _ResolverBlocked):
            return seen.error
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return None
