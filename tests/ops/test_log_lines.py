"""Log lines written by the event loop's thread: batched per loop turn, never stuck."""

from __future__ import annotations

import asyncio
import io
import threading

from daemon.ops.logs import _LineLogger


class CountingStream(io.StringIO):
    """A stream that counts its write calls."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_of_one_loop_turn_go_out_in_order_with_one_write() -> None:
    stream = CountingStream()
    sink = _LineLogger(stream, None)

    async def turn() -> str:
        for i in range(1_000):
            sink.msg(f"line {i}")
        seen = stream.getvalue()
        await asyncio.sleep(0)  # the loop's turn ends: the scheduled flush runs
        return seen

    assert asyncio.run(turn()) == ""
    assert stream.getvalue().splitlines() == [f"line {i}" for i in range(1_000)]
    assert stream.writes == 1


def test_a_line_from_another_thread_is_written_at_once_with_the_buffer() -> None:
    stream = CountingStream()
    sink = _LineLogger(stream, None)

    async def main() -> None:
        sink.msg("from the loop")
        worker = threading.Thread(target=sink.msg, args=("from a thread",))
        worker.start()
        worker.join()
        assert stream.getvalue().splitlines() == ["from the loop", "from a thread"]

    asyncio.run(main())


def test_lines_after_a_loop_ended_with_a_flush_pending_are_not_stuck() -> None:
    """A loop that closed before its flush ran leaves a stale marker; later lines are written
    at once outside a loop, and flushed at the end of the turn in the next loop."""
    stream = CountingStream()
    sink = _LineLogger(stream, None)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(asyncio.sleep(0))
    loop.call_soon(sink.msg, "last of the old loop")
    loop.call_soon(loop.stop)
    loop.run_forever()  # msg runs, its flush is scheduled, the loop stops before running it
    loop.close()
    assert stream.getvalue() == ""
    sink.msg("outside any loop")
    assert stream.getvalue().splitlines() == ["last of the old loop", "outside any loop"]

    async def next_loop() -> None:
        sink.msg("in the next loop")
        await asyncio.sleep(0)

    sink._loop = loop  # as if the closed loop's flush were still pending
    asyncio.run(next_loop())
    assert stream.getvalue().splitlines()[-1] == "in the next loop"
