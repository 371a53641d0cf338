"""Call Python: a function from an importable module, called with keyword arguments."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
import math
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from daemon.core.errors import PythonError, StepError
from daemon.core.secrets import SECRETS
from daemon.core.text import type_name
from steps.base import Evaluator, Step, StepCompiler, StepContext, StepSpec

# Plain (blocking) functions run on this many threads, shared by every Call Python step of the
# process: enough for a few slow calls at once, bounded so a burst of runs cannot spawn hundreds
# of threads. Further calls wait for a free thread; the event loop never does.
MAX_WORKERS = 8
# Deeper results are refused rather than walked (a cycle would never end).
MAX_DEPTH = 100

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The shared thread pool, created on first use (importing the module starts no thread)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="cronstack-python")
        return _pool


def resolve(target: str) -> Callable[..., Any]:
    """Import `package.module:function` (or `module:Class.method`); ValueError says why not."""
    module_name, sep, attr_path = target.partition(":")
    module_name, attr_path = module_name.strip(), attr_path.strip()
    if not sep or not module_name or not attr_path:
        raise ValueError(f'target "{target}" must read "package.module:function"')
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ValueError(
                f'cannot import module "{module_name}": no module named "{exc.name}" (install it '
                "into the daemon's virtualenv or add its folder to PYTHONPATH)"
            ) from None
        raise ValueError(f'cannot import module "{module_name}": {_describe(exc)}') from None
    except Exception as exc:  # the module's own code failed while importing
        raise ValueError(f'importing module "{module_name}" failed: {_describe(exc)}') from None
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f'module "{module_name}" has no attribute "{attr_path}"') from None
    if not callable(obj):
        raise ValueError(f'"{target}" is not a function (its type is {type(obj).__name__})')
    return obj


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_json(value: Any, where: str = "", depth: int = 0) -> Any:
    """The value if it is JSON (dict with text keys, list, str, int, finite float, bool, None);
    tuples become lists. Otherwise a TypeError naming the offending type and where it sits."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise TypeError(f"the number {value}{_at(where)}")
    if depth >= MAX_DEPTH:
        raise TypeError(f"a value nested deeper than {MAX_DEPTH} levels{_at(where)}")
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"an object key of type {type(key).__name__}{_at(where)}")
            out[key] = check_json(item, f"{where}[{key!r}]", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [check_json(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise TypeError(f"a {type(value).__name__}{_at(where)}")


def _at(where: str) -> str:
    return f" at {where}" if where else ""


class CallPython(Step):
    """Call `target` with `args` as keyword arguments: coroutine functions are awaited, plain
    ones run on the shared thread pool. The (JSON) return value is the step's value."""

    class Spec(StepSpec, kw_only=True, forbid_unknown_fields=True):
        target: str
        args: Any = None

    function = "call_python"
    display_name = "Call Python"

    __slots__ = ("_args", "_func", "_is_async", "_target")

    def __init__(self, spec: Spec, c: StepCompiler) -> None:
        self._target = spec.target.strip()
        self._func: Callable[..., Any] | None = None
        self._is_async = False
        try:
            self._func = resolve(self._target)
        except ValueError as exc:
            c.error("target", str(exc))
        if self._func is not None:
            self._is_async = inspect.iscoroutinefunction(self._func)
        self._args: Evaluator | None = None
        if spec.args is not None:
            if not isinstance(spec.args, dict | str):
                c.error(
                    "args", f"args is an object of keyword arguments, got {type_name(spec.args)}"
                )
            else:
                self._args = c.template(spec.args, "args")
                if isinstance(spec.args, dict) and self._func is not None:
                    self._check_signature(spec.args, c)
        super().__init__(spec, c)

    def _check_signature(self, args: dict[str, Any], c: StepCompiler) -> None:
        """Arguments the function cannot take (or required ones missing) are load-time errors."""
        assert self._func is not None
        try:
            signature = inspect.signature(self._func)
        except (TypeError, ValueError):
            return  # a builtin without introspectable parameters: found out at run time
        try:
            signature.bind(**dict.fromkeys(args))
        except TypeError as exc:
            c.error("args", f"{self._target}{signature}: {exc}")

    async def run(self, ctx: StepContext) -> Any:
        func = self._func
        if func is None:
            raise StepError(f'"{self._target}" could not be imported')  # reported by check
        kwargs: dict[str, Any] = {}
        if self._args is not None:
            values = self._args(ctx)
            if values is not None:
                if not isinstance(values, Mapping) or not all(isinstance(k, str) for k in values):
                    raise StepError(f"Call Python args must be an object, got {type_name(values)}")
                kwargs = dict(values)
        try:
            if self._is_async:
                result = await func(**kwargs)
            else:
                # The run's log context (task, run_id) goes along into the thread.
                call = functools.partial(contextvars.copy_context().run, func, **kwargs)
                result = await asyncio.get_running_loop().run_in_executor(pool(), call)
                if inspect.isawaitable(result):  # a plain function handing back a coroutine
                    result = await result
        except asyncio.CancelledError:
            # A thread cannot be stopped: a plain function runs to its end, result discarded.
            raise
        except (Exception, SystemExit) as exc:
            message = SECRETS.mask(f"{self._target} raised {_describe(exc)}")
            raise PythonError(message, exception=type(exc).__name__) from None
        try:
            return check_json(result)
        except TypeError as exc:
            raise PythonError(f"{self._target} returned {exc}, which is not JSON") from None


PYTHON_STEPS: tuple[type[Step], ...] = (CallPython,)
