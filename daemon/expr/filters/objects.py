"""Object filters: set, set_conditional, set_ifnot*, unset, first_notnull, first_notempty."""

from __future__ import annotations

from typing import Any

from daemon.expr.filters.args import _auto_map, _path, _set_path
from daemon.expr.filters.compare import is_empty, php_truthy

# --- objects ---------------------------------------------------------------------------------


def f_set(value: Any, path: Any, new: Any) -> Any:
    segs = _path("set", path)
    if _auto_map(segs, value):
        return [_set_path("set", item, segs, new, remove=False) for item in value]
    return _set_path("set", value, segs, new, remove=False)


def f_set_conditional(value: Any, path: Any, new: Any, condition: Any) -> Any:
    return f_set(value, path, new) if php_truthy(condition) else value


def f_set_ifnotempty(value: Any, path: Any, new: Any) -> Any:
    return value if is_empty(new) else f_set(value, path, new)


def f_set_ifnotnull(value: Any, path: Any, new: Any) -> Any:
    return value if new is None else f_set(value, path, new)


def f_unset(value: Any, path: Any) -> Any:
    segs = _path("unset", path)
    if _auto_map(segs, value):
        return [_set_path("unset", item, segs, None, remove=True) for item in value]
    return _set_path("unset", value, segs, None, remove=True)


def f_first_notnull(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def f_first_notempty(value: Any, fallback: Any) -> Any:
    return fallback if is_empty(value) else value
