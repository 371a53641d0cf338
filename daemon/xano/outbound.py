"""XanoScript statements that reach outside: `api.request`, `redis.*`, `util.send_email`.

`api.request` is External API Request in Xano's shape: any status is a result
(`$r.response.{status, headers, result}`, headers as `"Name: value"` texts), `params` go in the
query string of a GET / DELETE / HEAD and in the (JSON) body otherwise (§6.45), the timeout
defaults to 10 s. `redis.*` is Data Caching (a miss reads null, §6.48; `ttl = 0` means no
expiry; ratelimit is a fixed window that fails with `toomanyrequests`). `util.send_email` is
Send Email for Resend, SendGrid, Postmark and Mailgun.
"""

from __future__ import annotations

from typing import Any, Final

from daemon.expr.nodes import Template
from daemon.xano import nodes as x
from daemon.xano.expressions import XanoCompileError, constant_value
from daemon.xano.statements import StackBuilder, Step

_QUERY_METHODS: Final = frozenset({"GET", "DELETE", "HEAD"})


def _text_attr(b: StackBuilder, stmt: x.Call, key: str, default: str | None = None) -> str:
    expr = stmt.attr(key)
    if expr is None:
        if default is None:
            raise XanoCompileError(f'{stmt.name} needs "{key} = …"', stmt.line, stmt.column)
        return default
    value = constant_value(expr)
    if not isinstance(value, str):
        raise XanoCompileError(f"{key} must be a text literal", expr.line, expr.column)
    return value


def api_request(b: StackBuilder, stmt: x.Call) -> Step:
    for key in ("ca_certificate", "certificate", "certificate_pass", "private_key"):
        if stmt.attr(key) is not None:
            raise XanoCompileError(
                f"api.request: {key} (client certificates) is not supported",
                stmt.line,
                stmt.column,
            )
    method = _text_attr(b, stmt, "method", "GET").upper()
    fields: dict[str, Any] = {
        "url": b.value(b.required(stmt, "url")),
        "method": method,
        "response_format": "xano",
        "timeout": 10,
    }
    if stmt.attr("headers") is not None:
        fields["headers"] = b.value(stmt.attr("headers"))
    params = stmt.attr("params")
    if params is not None:
        fields["params" if method in _QUERY_METHODS else "body"] = b.value(params)
    timeout = stmt.attr("timeout")
    if timeout is not None:
        fields["timeout"] = b.value(timeout)
    return b.step(stmt, "External API Request", "api.request", fields)


_REDIS: Final = {
    "redis.get": "get",
    "redis.set": "set",
    "redis.has": "exists",
    "redis.del": "delete",
    "redis.incr": "increment",
    "redis.decr": "decrement",
    "redis.push": "push",
    "redis.unshift": "unshift",
    "redis.pop": "pop",
    "redis.shift": "shift",
    "redis.range": "range",
    "redis.count": "count",
    "redis.remove": "remove",
    "redis.keys": "keys",
    "redis.ratelimit": "ratelimit",
}


def redis_statement(b: StackBuilder, stmt: x.Call) -> Step:
    op = _REDIS.get(stmt.name)
    if op is None:
        raise XanoCompileError(f'unknown statement "{stmt.name}"', stmt.line, stmt.column)
    key = stmt.attr("search") if op == "keys" else stmt.attr("key")
    if key is None:
        what = "search" if op == "keys" else "key"
        raise XanoCompileError(f'{stmt.name} needs "{what} = …"', stmt.line, stmt.column)
    fields: dict[str, Any] = {"operation": op, "key": b.value(key)}
    value = stmt.attr("data") if op == "set" else stmt.attr("value")
    if op in ("increment", "decrement"):
        value = stmt.attr("by") or value
    if value is not None:
        fields["value"] = b.value(value)
    elif op in ("set", "push", "unshift", "remove"):
        b.required(stmt, "data" if op == "set" else "value")
    ttl = stmt.attr("ttl")
    if ttl is not None:
        ttl_value = b.value(ttl)
        if ttl_value not in (0, None):  # 0: no expiry (§4.5)
            fields["ttl"] = _no_zero(ttl_value) if isinstance(ttl_value, Template) else ttl_value
    for xano_key, step_key in (("start", "start"), ("stop", "stop"), ("count", "count")):
        if op in ("range", "remove") and stmt.attr(xano_key) is not None:
            fields[step_key] = b.value(stmt.attr(xano_key))
    if op == "ratelimit":
        fields["max"] = b.value(b.required(stmt, "max"))
        if stmt.attr("error") is not None:
            fields["error"] = b.value(stmt.attr("error"))
    return b.step(stmt, "Data Caching", stmt.name, fields)


def _no_zero(ttl: Template) -> Template:
    inner = ttl.evaluate

    def ttl_or_none(ctx: Any) -> Any:
        value = inner(ctx)
        return None if value in (0, "0") else value

    return Template(ttl.source, ttl_or_none, ttl.references, False)


def send_email(b: StackBuilder, stmt: x.Call) -> Step:
    provider = _text_attr(b, stmt, "service_provider", "resend").lower()
    if provider == "xano":
        raise XanoCompileError(
            'util.send_email with service_provider "xano" cannot run here: it sends through'
            " Xano's own e-mail service; use resend, sendgrid, postmark or mailgun",
            stmt.line,
            stmt.column,
        )
    if stmt.attr("scheduled_at") is not None:
        raise XanoCompileError(
            "util.send_email: scheduled_at is not supported", stmt.line, stmt.column
        )
    fields: dict[str, Any] = {"provider": provider}
    for key in ("api_key", "to", "from"):
        fields[key] = b.value(b.required(stmt, key))
    for key in ("subject", "message", "cc", "bcc", "reply_to", "domain"):
        if stmt.attr(key) is not None:
            fields[key] = b.value(stmt.attr(key))
    return b.step(stmt, "Send Email", "util.send_email", fields)
