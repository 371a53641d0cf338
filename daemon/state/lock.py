"""The SQLite state store's single-process lock: a `flock` on `<db>.lock` naming its holder."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import IO


class StoreLockedError(RuntimeError):
    """Another process holds the SQLite state store (SQLite state means one daemon)."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        super().__init__(
            f"state store {path} is in use by another cronstack process ({holder}); "
            "a SQLite state store serves one daemon — stop the other one, or use a PostgreSQL "
            "state data source to run several replicas"
        )


class FileLock:
    """Held from `acquire` to `release`; the kernel drops it when the process dies (kill -9)."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.path = f"{db_path}.lock"
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # held until release
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            handle.close()
            raise StoreLockedError(self.db_path, holder) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
