"""XanoScript statements that reach outside: api.request, redis.*, util.send_email."""

from __future__ import annotations

from daemon.xano import nodes as x
from daemon.xano.expressions import XanoCompileError
from daemon.xano.statements import StackBuilder, Step


def api_request(b: StackBuilder, stmt: x.Call) -> Step:
    raise XanoCompileError(f"{stmt.name} is not supported yet", stmt.line, stmt.column)


def redis_statement(b: StackBuilder, stmt: x.Call) -> Step:
    raise XanoCompileError(f"{stmt.name} is not supported yet", stmt.line, stmt.column)


def send_email(b: StackBuilder, stmt: x.Call) -> Step:
    raise XanoCompileError(f"{stmt.name} is not supported yet", stmt.line, stmt.column)
