"""The filter calling convention: FilterDef, FilterContext, FilterEnv and ElementFn.

Calling convention (what the XanoScript compiler relies on):

* `FILTERS[name]` is a `FilterDef`; every alias maps to the same object. Check the argument
  count once at compile time with `fd.check_arity(n)`, then call `fd.fn` directly:
  - normal filter:        `fd.fn(value, *args)` - args already evaluated;
  - `fd.needs_ctx`:       `fd.fn(ctx, value, *args)` - ctx is a `FilterContext` (default time
    zone, current time, `to_expr` evaluation);
  - `fd.higher_order`:    `fd.fn(value, each, *rest)` - `each` is a callable
    `each(item, index, parent, result)` that evaluates the argument expression with `$$` /
    `$this` = item, `$index`, `$parent` (the whole array) and `$result` (reduce's
    accumulator) bound; `rest` are evaluated as usual (reduce's initial value).
  `fd(value, args, ctx)` does the same with the arity check, for tests and slow paths.
* `fd.pure` is false where the result changes between calls (uuid, shuffle, anything that
  reads "now"): the compiler must not fold those into constants.
* Filters never mutate their input; results may share unchanged parts with it.
* Failures raise `ExpressionError` naming the filter: `filter "count" expects an array or
  object, got text`. Sizes stay within MAX_STRING / MAX_LIST from `values`.

Values are JSON values (None, bool, int, float, str, list, dict; Decimal from NUMERIC
columns counts as a number). Binary results (raw hashes, `encrypt`, `base64_decode` of
non-text) are `bytes` when they are not valid UTF-8 and `str` when they are, which
round-trips losslessly through the encoders; text inputs are encoded as UTF-8.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any, Final, Protocol

from daemon.core.errors import ExpressionError
from daemon.core.millis import plain

ElementFn = Callable[[Any, Any, Any, Any], Any]
"""A higher-order filter's argument: `each(item, index, parent, result) -> value`."""


class FilterContext(Protocol):
    """What the timestamp filters and `to_expr` need from the run."""

    @property
    def tz(self) -> tzinfo:
        """Zone used when a filter's timezone argument is omitted (Xano: UTC)."""
        ...

    def now_ms(self) -> int:
        """The current time in epoch milliseconds ("now" is read per evaluation, §6.29)."""
        ...

    def evaluate_text(self, text: str) -> Any:
        """Compile and evaluate a XanoScript expression (`to_expr`); never Python `eval`."""
        ...


@dataclass(frozen=True, slots=True)
class FilterEnv:
    """A plain `FilterContext`: fixed zone, a clock, and an optional expression evaluator."""

    tz: tzinfo = UTC
    clock: Callable[[], int] | None = None
    evaluator: Callable[[str], Any] | None = None

    def now_ms(self) -> int:
        return self.clock() if self.clock is not None else time.time_ns() // 1_000_000

    def evaluate_text(self, text: str) -> Any:
        if self.evaluator is None:
            raise ExpressionError('filter "to_expr" needs the XanoScript expression compiler')
        return self.evaluator(text)


DEFAULT_ENV: Final = FilterEnv()


@dataclass(frozen=True, slots=True)
class FilterDef:
    """One filter: its implementation, how many arguments it takes, and how to call it."""

    name: str
    fn: Callable[..., Any]
    min_args: int
    max_args: int | None
    aliases: tuple[str, ...] = ()
    higher_order: bool = False
    needs_ctx: bool = False
    pure: bool = True

    def check_arity(self, count: int) -> None:
        """Raise unless `count` arguments fit (the compiler calls this at load time)."""
        hi = self.max_args
        if self.min_args <= count and (hi is None or count <= hi):
            return
        if hi == self.min_args:
            want = f"{hi} argument{'s' if hi != 1 else ''}"
        elif hi is None:
            want = f"at least {self.min_args} arguments"
        else:
            want = f"{self.min_args} to {hi} arguments"
        raise ExpressionError(f'filter "{self.name}" takes {want}, got {count}')

    def __call__(
        self, value: Any, args: Sequence[Any] = (), ctx: FilterContext | None = None
    ) -> Any:
        self.check_arity(len(args))
        # Times read from a column (Millis) are plain numbers to every filter.
        value = plain(value)
        if args:
            args = [plain(a) for a in args]
        if self.needs_ctx:
            return self.fn(ctx if ctx is not None else DEFAULT_ENV, value, *args)
        return self.fn(value, *args)
