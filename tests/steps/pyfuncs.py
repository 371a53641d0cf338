"""Functions for the Call Python tests, imported by target ("tests.steps.pyfuncs:NAME")."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from typing import Any

NOT_A_FUNCTION = 42


def add(a: int, b: int = 0) -> dict[str, Any]:
    return {"sum": a + b, "thread": threading.current_thread().name}


async def fetch(name: str) -> list[Any]:
    await asyncio.sleep(0)
    return [name, ("tuple", 1), {"nested": None}]


def blocking(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def boom(message: str) -> None:
    raise ValueError(message)


def when() -> dict[str, Any]:
    return {"ok": [1, 2], "when": datetime(2026, 1, 1, tzinfo=UTC)}


def not_a_number() -> float:
    return float("nan")


def obj() -> object:
    return object()


class Report:
    @staticmethod
    def build(rows: list[int]) -> int:
        return len(rows)
