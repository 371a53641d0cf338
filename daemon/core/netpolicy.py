"""Which network destinations are allowed: `[http] block_private_networks` and `allow_hosts`.

Pure address logic (the standard library's ipaddress): config validates `allow_hosts` with it
and the HTTP client's resolver (resources/http/guard.py) enforces it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from daemon.core.errors import HttpError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

RULE = "block_private_networks"
_HINT = "allow it with [http] allow_hosts"
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_LOOPBACKS = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
# Hosts made only of digits, dots and hex letters with an 0x: the legacy inet_aton spellings
# (2130706433, 0x7f.1, 0177.0.0.1, 127.1) that resolvers quietly map onto real addresses.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.I)


class BlockedAddressError(HttpError):
    """A destination refused by the guard (never retried)."""


def why_blocked(ip: IPAddress) -> str | None:
    """The kind of non-public address `ip` is (e.g. "a loopback address"), or None if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            inner = why_blocked(mapped)
            return f"{inner} (IPv4-mapped {mapped})" if inner else None
        if ip in _UNIQUE_LOCAL:
            return "a unique-local address"
        if ip in _SITE_LOCAL:
            return "a site-local address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives here)"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a shared (carrier-grade NAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "a non-public address"
    return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """An IP address written in any form a resolver would accept, including the legacy numeric
    IPv4 spellings (decimal, octal, hex, short); None for a host name."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text.rstrip(".")))
        except OSError:
            return None
    return None


@dataclass(slots=True)
class NetworkPolicy:
    """`block_private_networks` + `allow_hosts` (host names, `host:port`, IP literals, CIDRs)."""

    block_private: bool = True
    hosts: set[str] = field(default_factory=set)  # names allowed on any port
    host_ports: set[tuple[str, int]] = field(default_factory=set)
    networks: list[IPNetwork] = field(default_factory=list)
    net_ports: list[tuple[IPNetwork, int]] = field(default_factory=list)

    @classmethod
    def build(cls, block_private: bool, allow_hosts: Iterable[str]) -> NetworkPolicy:
        """Parse `allow_hosts`; an entry that is none of the accepted forms is a ValueError."""
        policy = cls(block_private=block_private)
        for raw in allow_hosts:
            entry = raw.strip().lower()
            if not entry:
                raise ValueError("empty allow_hosts entry")
            port: int | None = None
            host = entry
            # "host:port" and "[v6]:port"; a bare IPv6 literal has colons but no port.
            if entry.startswith("["):
                inner, _, rest = entry[1:].partition("]")
                host = inner
                if rest.startswith(":"):
                    port = _port(rest[1:], raw)
            elif entry.count(":") == 1:
                host, _, port_text = entry.partition(":")
                port = _port(port_text, raw)
            try:
                net = ipaddress.ip_network(host, strict=False)
            except ValueError:
                if "/" in host or not host:
                    raise ValueError(f'invalid allow_hosts entry "{raw}"') from None
                host = host.rstrip(".")
                if port is None:
                    policy.hosts.add(host)
                else:
                    policy.host_ports.add((host, port))
                continue
            if port is None:
                policy.networks.append(net)
            else:
                policy.net_ports.append((net, port))
        return policy

    def host_allowed(self, host: str, port: int) -> bool:
        """True when the name itself is allowed (then its addresses are not checked)."""
        name = host.lower().rstrip(".")
        return name in self.hosts or (name, port) in self.host_ports

    def address_allowed(self, ip: IPAddress, port: int) -> bool:
        if any(ip in net for net in self.networks):
            return True
        return any(ip in net and port == p for net, p in self.net_ports)

    def check_ip(self, ip: IPAddress, port: int, host: str | None = None) -> None:
        """Raise BlockedAddressError when `ip` may not be reached."""
        if not self.block_private or self.address_allowed(ip, port):
            return
        reason = why_blocked(ip)
        if reason is None:
            return
        shown = f"[{ip}]" if ip.version == 6 else str(ip)
        target = f"{host} resolves to {shown}, which is" if host else f"{shown} is"
        raise BlockedAddressError(f"blocked: {target} {reason} ({RULE}; {_HINT})")

    def check_literal(self, host: str, port: int) -> bool:
        """Check a URL host before any connection: True if it is an IP literal (checked here,
        since aiohttp never passes literals to the resolver), False for a name."""
        if not self.block_private or self.host_allowed(host, port):
            return parse_ip_literal(host) is not None
        ip = parse_ip_literal(host)
        if ip is None:
            if host.lower().rstrip(".") == "localhost" or host.lower().endswith(".localhost"):
                # Reserved for loopback by RFC 6761, whatever a resolver says; allowed only when
                # allow_hosts admits a loopback address (then the resolver checks each answer).
                if any(self.address_allowed(ip, port) for ip in _LOOPBACKS):
                    return False
                raise BlockedAddressError(f"blocked: {host} is a loopback name ({RULE}; {_HINT})")
            return False
        self.check_ip(ip, port)
        if str(ip) != host.strip("[]").split("%", 1)[0]:
            # 2130706433, 0x7f.1 ...: public or not, refuse the ambiguous spelling outright;
            # different stacks read it differently.
            raise BlockedAddressError(
                f"blocked: {host} is a non-canonical IP address spelling of {ip} ({RULE})"
            )
        return True


def _port(text: str, raw: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f'invalid port in allow_hosts entry "{raw}"')
    return int(text)
