"""URL filters: encoding, query-string arguments, url_parse and querystring_parse."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Final

from daemon.expr.filters.args import _bool_arg, _bytes, _text
from daemon.expr.filters.compare import _fail

# --- URLs ------------------------------------------------------------------------------------


def f_url_encode(value: Any) -> str:
    # PHP urlencode: spaces become "+", everything but [A-Za-z0-9_.-] is %XX ("~" too).
    return urllib.parse.quote_plus(_bytes("url_encode", value), safe="").replace("~", "%7E")


def f_url_encode_rfc3986(value: Any) -> str:
    return urllib.parse.quote(_bytes("url_encode_rfc3986", value), safe="-_.~")


def f_url_decode(value: Any) -> str:
    return urllib.parse.unquote_plus(_text("url_decode", value))


def f_url_decode_rfc3986(value: Any) -> str:
    return urllib.parse.unquote(_text("url_decode_rfc3986", value))


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """Raw (still encoded) key/value pairs of a query string, in order."""
    pairs = []
    for part in query.split("&"):
        if part:
            key, _, val = part.partition("=")
            pairs.append((key, val))
    return pairs


def _decoded_key(raw: str) -> str:
    return urllib.parse.unquote_plus(raw)


def _with_query(url: str, pairs: list[tuple[str, str]]) -> str:
    base, hash_, fragment = url.partition("#")
    base = base.split("?", 1)[0]
    query = "&".join(f"{k}={v}" if v or k else k for k, v in pairs)
    return base + ("?" + query if query else "") + (hash_ + fragment)


def _url_query(url: str) -> str:
    return url.partition("#")[0].partition("?")[2]


def f_url_addarg(value: Any, key: Any, arg: Any, rfc3986: Any = False) -> str:
    url = _text("url_addarg", value)
    k, v = _text("url_addarg", key), _text("url_addarg", arg)
    enc = f_url_encode_rfc3986 if _bool_arg(rfc3986) else f_url_encode
    pairs = [(rk, rv) for rk, rv in _query_pairs(_url_query(url)) if _decoded_key(rk) != k]
    pairs.append((enc(k), enc(v)))
    return _with_query(url, pairs)


def f_url_delarg(value: Any, key: Any) -> str:
    url = _text("url_delarg", value)
    k = _text("url_delarg", key)
    pairs = [(rk, rv) for rk, rv in _query_pairs(_url_query(url)) if _decoded_key(rk) != k]
    return _with_query(url, pairs)


def f_url_hasarg(value: Any, key: Any) -> bool:
    k = _text("url_hasarg", key)
    return any(
        _decoded_key(rk) == k for rk, _ in _query_pairs(_url_query(_text("url_hasarg", value)))
    )


def f_url_getarg(value: Any, key: Any, default: Any = "") -> Any:
    k = _text("url_getarg", key)
    for rk, rv in _query_pairs(_url_query(_text("url_getarg", value))):
        if _decoded_key(rk) == k:
            return urllib.parse.unquote_plus(rv)
    return default


def f_url_parse(value: Any) -> dict[str, Any]:
    """URL parts as PHP parse_url names them; every key is present, missing parts are null."""
    text = _text("url_parse", value)
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise _fail("url_parse", f"cannot parse {text[:60]!r}: {exc}") from None
    return {
        "scheme": parts.scheme or None,
        "host": parts.hostname if parts.netloc else None,
        "port": port,
        "user": parts.username,
        "pass": parts.password,
        "path": parts.path or None,
        "query": parts.query or None,
        "fragment": parts.fragment or None,
    }


_BRACKET_KEY_RE: Final = re.compile(r"\[([^\]]*)\]")


def f_querystring_parse(value: Any) -> dict[str, Any]:
    """PHP parse_str: "a=1&b[]=2&b[]=3&c[x]=4" -> {"a": "1", "b": ["2", "3"], "c": {"x": "4"}}."""
    text = _text("querystring_parse", value)
    if text.startswith("?"):
        text = text[1:]
    out: dict[str, Any] = {}
    for raw_key, raw_val in _query_pairs(text):
        key = urllib.parse.unquote_plus(raw_key)
        val = urllib.parse.unquote_plus(raw_val)
        head, bracket, _ = key.partition("[")
        if not head:
            continue
        # PHP turns "." and " " in the top-level name into "_".
        head = head.replace(".", "_").replace(" ", "_")
        subs = _BRACKET_KEY_RE.findall(key[len(head) :]) if bracket else []
        _parse_str_set(out, [head, *subs[:16]], val)
    return out


def _parse_str_set(container: Any, keys: list[str], val: str) -> None:
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if type(container) is list:
            if key == "" or not key.isdigit():
                if last:
                    container.append(val)
                    return
                container.append({})
                container = container[-1]
                continue
            key_i = int(key)
            while len(container) <= key_i and len(container) < 10_000:
                container.append(None)
            if key_i >= len(container):
                return
            if last:
                container[key_i] = val
                return
            if not isinstance(container[key_i], list | dict):
                container[key_i] = {}
            container = container[key_i]
            continue
        if key == "":
            key = str(len(container))
        if last:
            container[key] = val
            return
        nxt = container.get(key)
        if not isinstance(nxt, list | dict):
            nxt = [] if keys[depth + 1] == "" else {}
            container[key] = nxt
        container = nxt
