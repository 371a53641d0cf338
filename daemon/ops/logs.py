"""structlog configuration: JSON lines (orjson) or console output, contextvars, no locals."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog

from daemon.core.secrets import SECRETS

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def mask_secrets(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: every tracked secret in any value becomes `***`."""
    if not len(SECRETS):
        return event_dict
    return {k: SECRETS.mask_value(v) for k, v in event_dict.items()}


def _orjson_dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


class ReopenableFile:
    """An append-mode log file that `reopen()` closes and opens again (after logrotate moved it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fh: TextIO | None = None
        self.reopen()

    def reopen(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8", buffering=1)

    def write(self, line: str) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.write(line)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


class _LineLogger:
    """Writes each rendered event as one line to the stream and, when set, to the log file."""

    def __init__(self, stream: TextIO, file: ReopenableFile | None) -> None:
        self._stream = stream
        self._file = file

    def msg(self, message: str) -> None:
        line = message + "\n"
        try:
            self._stream.write(line)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stdout closed (journald restarting): the file, if any, still gets it
        if self._file is not None:
            self._file.write(line)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


_file: ReopenableFile | None = None


def configure(
    level: str = "info",
    fmt: str = "json",
    stream: TextIO | None = None,
    file: str | None = None,
    ship: Callable[[Any, str, dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """Configure structlog for the process. Keys: `ts level event` (+ `task run_id step`).

    `file`: also append every line to this file; `reopen()` reopens it (SIGHUP, logrotate).
    `ship`: a processor that copies each (masked) event to the log shipper (daemon.ops.logship).
    Calling again replaces the previous configuration (a reload may change level or file).
    """
    global _file
    out = stream if stream is not None else sys.stdout
    if _file is not None and (not file or Path(file) != _file.path):
        _file.close()
        _file = None
    if file and _file is None:
        _file = ReopenableFile(file)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        # Tracebacks as plain text without local variables: locals may hold secrets. Rendered
        # before masking so a secret inside an exception message is masked too.
        structlog.processors.format_exc_info,
        mask_secrets,
    ]
    if ship is not None:
        processors.append(ship)
    if fmt == "console":
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    else:
        processors.append(structlog.processors.JSONRenderer(serializer=_orjson_dumps))
    sink = _LineLogger(out, _file)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=lambda *_: sink,
        cache_logger_on_first_use=False,
    )


def reopen() -> None:
    """Reopen the log file, if one is configured (after logrotate renamed it)."""
    if _file is not None:
        _file.reopen()
