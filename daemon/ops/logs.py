"""structlog configuration: JSON lines (orjson) or console output, contextvars, no locals."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog
from aiohttp.http_exceptions import HttpProcessingError

from daemon.core.runs import CURRENT_RUN, MISSED, SKIPPED, SUCCEEDED, Outcome
from daemon.core.secrets import SECRETS

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def merge_run(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: `task` and `run_id` of the run this line is logged in, first."""
    run = CURRENT_RUN.get()
    if run is None:
        return event_dict
    return {"task": run[0], "run_id": run[1], **event_dict}


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
    """Writes each rendered event as one line to the stream and, when set, to the log file.

    In the event loop's thread lines are buffered and written once at the end of the loop's
    current turn: a batch of 10,000 runs logs 10,000 lines with one write, not 10,000 write and
    flush calls. Elsewhere (no running loop, another thread) a line is written at once.
    """

    def __init__(self, stream: TextIO, file: ReopenableFile | None) -> None:
        self._stream = stream
        self._file = file
        self._lock = threading.Lock()
        self._buffer: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # a flush is scheduled on it
        self._loop_thread = 0  # the thread that loop runs in

    def msg(self, message: str) -> None:
        line = message + "\n"
        pending = self._loop
        if (
            pending is not None
            and self._loop_thread == threading.get_ident()
            and pending.is_running()
        ):
            # A flush is already scheduled on the loop running in this thread. Checked without
            # asyncio.get_running_loop(), which makes a getpid() system call on every call
            # (a tenth of the loop thread's time at 10,000 run_finished lines a second).
            with self._lock:
                if self._loop is pending:
                    self._buffer.append(line)
                    return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._lock:
            self._buffer.append(line)
            if loop is not None:
                if self._loop is not loop:  # none scheduled, or on a loop that has ended
                    self._loop = loop
                    self._loop_thread = threading.get_ident()
                    loop.call_soon(self.flush)
                return
        self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._buffer = self._buffer, []
            self._loop = None
        if not lines:
            return
        text = "".join(lines)
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stdout closed (journald restarting): the file, if any, still gets it
        if self._file is not None:
            self._file.write(text)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


_file: ReopenableFile | None = None
_handler: logging.Handler | None = None

# Libraries log through the standard library; without a handler Python prints their warnings
# (asyncpg's pool retries with a traceback each, aiohttp's "Error handling request") raw on
# stderr. These levels keep their per-operation debug chatter out even at `level = "debug"`.
LIBRARY_LEVELS = {
    "asyncio": logging.WARNING,
    "asyncpg": logging.WARNING,
    "aiohttp": logging.WARNING,
    "aiosqlite": logging.WARNING,
    "redis": logging.WARNING,
    "urllib3": logging.WARNING,
}

# A library record carrying one of these (or an asyncpg error: server gone, too many
# connections) is an expected condition, not a bug: one line with the error's type and message
# in `error`, no traceback. Client garbage on the admin port
# (aiohttp logs it as an error with a traceback) is a warning: it is the client's fault.
_EXPECTED = (OSError, asyncio.TimeoutError, HttpProcessingError)
_CLIENT_ERRORS = (HttpProcessingError,)


def is_expected(exc: BaseException) -> bool:
    """An error that says something about the outside (network, server, client), not a bug:
    logged as one line with `error_summary`, without a traceback."""
    return isinstance(exc, _EXPECTED) or type(exc).__module__.startswith("asyncpg")


def error_summary(exc: BaseException) -> str:
    """`Type: message` on one line, bounded."""
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _LibraryFilter(logging.Filter):
    """Applies the configured level to library records after classifying them: expected errors
    lose their traceback (kept as `error`), client errors become warnings."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and is_expected(exc):
            record.error_summary = error_summary(exc)
            record.exc_info = None
            record.exc_text = None
            if isinstance(exc, _CLIENT_ERRORS) and record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return record.levelno >= self.threshold


def _library_fields(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor for stdlib records: the logger's name and the error summary (and
    ProcessorFormatter's private keys dropped before masking and shipping see them)."""
    record = event_dict.pop("_record", None)
    event_dict.pop("_from_structlog", None)
    if record is not None:
        event_dict["logger"] = record.name
        summary = getattr(record, "error_summary", None)
        if summary is not None:
            event_dict["error"] = summary
            event_dict.pop("exc_info", None)
    return event_dict


class _SinkHandler(logging.Handler):
    """Hands stdlib records, rendered by structlog's ProcessorFormatter, to the line sink."""

    def __init__(self, sink: _LineLogger) -> None:
        super().__init__(logging.NOTSET)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a broken library message must not take logging down
            line = _orjson_dumps({"level": "error", "event": "log_record_unformattable"})
        self.sink.msg(line)


def _bridge_stdlib(sink: _LineLogger, threshold: int, chain: list[Any], renderer: Any) -> None:
    """Route the standard library's logging (and `warnings`) through structlog's processors into
    the same sink, replacing the handler a previous configure() installed."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    handler = _SinkHandler(sink)
    handler.addFilter(_LibraryFilter(threshold))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=chain,
            processors=[renderer],  # _library_fields already removed the private keys
        )
    )
    root.addHandler(handler)
    root.setLevel(threshold)
    _handler = handler
    for name, level in LIBRARY_LEVELS.items():
        logging.getLogger(name).setLevel(max(level, threshold))
    # Never print a logging failure's traceback on stderr (the handler above copes).
    logging.raiseExceptions = False
    # warnings.warn(...) becomes a log line like any other instead of text on stderr.
    warnings.showwarning = _show_warning


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    structlog.get_logger("py.warnings").warning(
        "python_warning",
        category=category.__name__,
        message=str(message),
        location=f"{filename}:{lineno}",
    )


class _Settings:
    """What `configure` chose, for `log_outcome`'s direct path."""

    level = logging.INFO
    json = True
    ship: Callable[[Any, str, dict[str, Any]], dict[str, Any]] | None = None
    sink: _LineLogger | None = None


_settings = _Settings()


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

    def chain(*extra: Any) -> list[Any]:
        processors: list[Any] = [
            structlog.contextvars.merge_contextvars,
            merge_run,
            structlog.processors.add_log_level,
            *extra,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            # Tracebacks as plain text without local variables: locals may hold secrets.
            # Rendered before masking so a secret inside an exception message is masked too.
            structlog.processors.format_exc_info,
            mask_secrets,
        ]
        if ship is not None:
            processors.append(ship)
        return processors

    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    previous = _settings.sink
    if previous is not None:
        previous.flush()
    sink = _LineLogger(out, _file)
    threshold = _LEVELS.get(level, logging.INFO)
    _settings.level = threshold
    _settings.json = fmt != "console"
    _settings.ship = ship
    _settings.sink = sink
    structlog.configure(
        processors=[*chain(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=lambda *_: sink,
        cache_logger_on_first_use=False,
    )
    _bridge_stdlib(sink, threshold, chain(_library_fields), renderer)


def flush() -> None:
    """Write buffered lines now (before exit)."""
    if _settings.sink is not None:
        _settings.sink.flush()


_outcome_log = structlog.get_logger("cronstack.runs")
_OUTCOME_EVENTS: dict[str, tuple[str, str, int]] = {
    SKIPPED: ("run_skipped", "info", logging.INFO),
    MISSED: ("run_missed", "warning", logging.WARNING),
    SUCCEEDED: ("run_finished", "info", logging.INFO),
}
_FAILED = ("run_finished", "warning", logging.WARNING)


class _Second:
    """The text of the current whole second, made once per second for `_utc_stamp`."""

    at = -1
    text = ""


def _utc_stamp() -> str:
    """Now as `2026-12-02T15:38:46.379127Z`, as structlog's TimeStamper writes it; the date and
    time of day are formatted once per second (datetime.isoformat per line was a quarter of a
    run_finished line at 10,000 a second)."""
    now = time.time()
    second = int(now)
    if second != _Second.at:
        _Second.text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _Second.at = second
    # %-formatting: 0.4 us against 0.7 for the f-string with int() and a format spec.
    return _Second.text + ".%06dZ" % ((now - second) * 1_000_000)  # noqa: UP031


def log_outcome(outcome: Outcome) -> None:
    """One log line per outcome, the same line `core.runs.LogRecorder` writes through structlog,
    built directly: at 10,000 runs a second the processor chain was the costliest part of a
    fire. Masking and log shipping apply as to every other line; console output and anything
    unusual take the structlog path."""
    event, level, number = _OUTCOME_EVENTS.get(outcome.status, _FAILED)
    if number < _settings.level:
        return
    fields = outcome.fields()
    if event == "run_finished" and number == logging.WARNING:
        # The failing step as the stable top-level `step` log key (docs/contract.md "Logs").
        fields["step"] = outcome.error.get("step") if outcome.error else None
    sink = _settings.sink
    if (
        sink is None
        or not _settings.json
        or CURRENT_RUN.get() is not None
        or structlog.contextvars.get_contextvars()
    ):
        getattr(_outcome_log, level)(event, **fields)
        return
    fields["event"] = event
    fields["level"] = level
    fields["ts"] = _utc_stamp()
    if len(SECRETS):
        fields = {k: SECRETS.mask_value(v) for k, v in fields.items()}
    if _settings.ship is not None:
        fields = _settings.ship(None, level, fields)
    sink.msg(orjson.dumps(fields, default=str).decode())


def reopen() -> None:
    """Reopen the log file, if one is configured (after logrotate renamed it)."""
    if _file is not None:
        _file.reopen()
