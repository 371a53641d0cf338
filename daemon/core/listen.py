"""The admin listener's address: `host:port`, `[v6]:port` or a unix socket path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """`host:port`, `[v6]:port`, or a unix socket path (`/run/x.sock`, `unix:/run/x.sock`)."""

    host: str = ""
    port: int = 0
    path: str | None = None

    @classmethod
    def parse(cls, listen: str) -> ListenAddress:
        text = listen.strip()
        if text.startswith("unix:"):
            return cls(path=text[5:])
        if text.startswith(("/", "./")) or text.endswith(".sock"):
            return cls(path=text)
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f'expected "host:port" or a unix socket path, got "{listen}"')
        return cls(host=host.strip("[]") or "127.0.0.1", port=int(port))

    def url(self) -> str:
        if self.path is not None:
            return "http://localhost"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


__all__ = ["ListenAddress"]
