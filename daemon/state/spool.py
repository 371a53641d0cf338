"""Final writes the state store could not make before exit, kept on local disk for the next start.

At shutdown, rows still queued when the store does not answer in time (it is down, or slower
than `shutdown_timeout`) are written to a spool file, one JSON line per row, fsynced. The next
process to open the store replays every spool file nobody holds — before it marks anything
`interrupted` — so a run that finished is recorded as it finished, not guessed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

PREFIX = "cronstack-spool-"


@dataclass
class Spooled:
    """The writes of one spool: final updates (with the whole row to insert should the claim
    never have landed), rows to insert, and each task's latest slot."""

    updates: list[tuple[Any, ...]] = field(default_factory=list)
    fallbacks: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    inserts: list[tuple[Any, ...]] = field(default_factory=list)
    slots: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.updates) + len(self.inserts) + len(self.slots)


def spool_dir(env: Mapping[str, str], sqlite_path: str | None, config_dir: Path) -> Path:
    """Where spool files go: systemd's STATE_DIRECTORY, else beside a SQLite state database,
    else `var/` beside the config file."""
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state)
    if sqlite_path and sqlite_path != ":memory:":
        return Path(sqlite_path).resolve().parent
    return config_dir / "var"


def write(directory: Path, owner: str, spooled: Spooled) -> Path:
    """Write `spooled` to a new spool file (fsynced) and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", owner)
    path = directory / f"{PREFIX}{name}.ndjson"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        for kind, rows in (("u", spooled.updates), ("i", spooled.inserts)):
            for row in rows:
                out.write(orjson.dumps([kind, list(row)]) + b"\n")
        for run_id, row in spooled.fallbacks.items():
            out.write(orjson.dumps(["f", run_id, list(row)]) + b"\n")
        for task, slot in spooled.slots.items():
            out.write(orjson.dumps(["s", task, slot]) + b"\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def claimed(directory: Path) -> Iterator[list[tuple[Path, Spooled]]]:
    """Every spool file in `directory` that no live process holds, parsed, locked while the
    caller replays them; deleted when the caller's block ends without an error."""
    held: list[tuple[Path, IO[bytes], Spooled]] = []
    try:
        for path in sorted(directory.glob(f"{PREFIX}*.ndjson")) if directory.is_dir() else []:
            handle = open(path, "rb")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()  # another process is replaying it
                continue
            held.append((path, handle, _parse(handle.read().splitlines())))
        yield [(path, spooled) for path, _, spooled in held]
        for path, _, _ in held:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        for _, held_handle, _ in held:
            held_handle.close()


def _parse(lines: Iterable[bytes]) -> Spooled:
    spooled = Spooled()
    for line in lines:
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn last line (the process died mid-write): the rest still counts
        kind = item[0]
        if kind == "u":
            spooled.updates.append(tuple(item[1]))
        elif kind == "i":
            spooled.inserts.append(tuple(item[1]))
        elif kind == "f":
            spooled.fallbacks[item[1]] = tuple(item[2])
        elif kind == "s":
            spooled.slots[item[1]] = max(int(item[2]), spooled.slots.get(item[1], 0))
    return spooled
