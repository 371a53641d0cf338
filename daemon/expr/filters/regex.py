"""Regular-expression filters over PHP PCRE patterns (regex_matches, regex_replace, ...)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, Final

from daemon.expr.filters.args import _sized_list, _sized_text, _text
from daemon.expr.filters.compare import _fail

# --- regular expressions ---------------------------------------------------------------------
# Patterns are PHP PCRE literals with delimiters and flags ("/^a.*c$/i"). Each distinct
# pattern is translated and compiled once (LRU cache), not per call.

_BRACKETS: Final = {"(": ")", "[": "]", "{": "}", "<": ">"}
_PCRE_FLAGS: Final = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_NAMED_GROUP_RE: Final = re.compile(r"\(\?<(?![=!])|\(\?'([A-Za-z_]\w*)'|\(\?P?<([A-Za-z_]\w*)>")


@lru_cache(maxsize=512)
def _pcre(name: str, pattern: str) -> tuple[re.Pattern[str], bool]:
    """Compile a delimited PCRE pattern; the flag says "anchored" (PCRE's A modifier)."""
    if len(pattern) < 2:
        raise _fail(name, f"needs a delimited pattern like /.../, got {pattern!r}")
    opener = pattern[0]
    if opener.isalnum() or opener == "\\" or opener.isspace():
        raise _fail(name, f"pattern must start with a delimiter like /, got {pattern[:20]!r}")
    closer = _BRACKETS.get(opener, opener)
    end = pattern.rfind(closer)
    if end <= 0:
        raise _fail(name, f"pattern has no closing delimiter {closer!r}")
    body, modifiers = pattern[1:end], pattern[end + 1 :]
    flags = 0
    anchored = False
    for ch in modifiers:
        if ch in _PCRE_FLAGS:
            flags |= _PCRE_FLAGS[ch]
        elif ch == "A":
            anchored = True
        elif ch in "uDS\n\r ":
            continue  # Python patterns are Unicode already; D and S change nothing we rely on
        else:
            raise _fail(name, f'does not support the regex modifier "{ch}"')
    # PCRE's (?<name>...) is Python's (?P<name>...).
    body = _NAMED_GROUP_RE.sub(
        lambda m: "(?P<" if m.group(0) == "(?<" else f"(?P<{m.group(1) or m.group(2)}>", body
    )
    try:
        return re.compile(body, flags), anchored
    except re.error as exc:
        raise _fail(name, f"has an invalid regular expression: {exc}") from None


def _search(name: str, pattern: Any, subject: str) -> re.Match[str] | None:
    compiled, anchored = _pcre(name, _text(name, pattern))
    return compiled.match(subject) if anchored else compiled.search(subject)


def _groups(m: re.Match[str]) -> list[str]:
    # preg_match: unmatched groups are "", trailing unmatched ones are left out.
    groups = [m.group(0), *m.groups()]
    while len(groups) > 1 and groups[-1] is None:
        groups.pop()
    return [g if g is not None else "" for g in groups]


def f_regex_matches(pattern: Any, subject: Any) -> bool:
    return _search("regex_matches", pattern, _text("regex_matches", subject)) is not None


def f_regex_get_first_match(pattern: Any, subject: Any) -> list[str]:
    m = _search("regex_get_first_match", pattern, _text("regex_get_first_match", subject))
    return _groups(m) if m else []


def f_regex_get_all_matches(pattern: Any, subject: Any) -> list[list[str]]:
    """preg_match_all in pattern order: [[all full matches], [all group 1], ...]."""
    name = "regex_get_all_matches"
    compiled, anchored = _pcre(name, _text(name, pattern))
    text = _text(name, subject)
    out: list[list[str]] = [[] for _ in range(compiled.groups + 1)]
    for count, m in enumerate(_all_matches(compiled, anchored, text)):
        _sized_list(name, count + 1)
        for i in range(compiled.groups + 1):
            out[i].append(m.group(i) or "")
    return out


def _all_matches(compiled: re.Pattern[str], anchored: bool, text: str) -> Iterable[re.Match[str]]:
    if not anchored:
        yield from compiled.finditer(text)
        return
    pos = 0  # PCRE's A modifier: each match must start where the previous one ended
    while pos <= len(text):
        m = compiled.match(text, pos)
        if m is None:
            return
        yield m
        pos = m.end() if m.end() > pos else pos + 1


_PHP_REF_RE: Final = re.compile(r"\\\\|\$\{(\d{1,2})\}|\$(\d{1,2})|\\(\d{1,2})")


@lru_cache(maxsize=512)
def _replacement(rep: str) -> Callable[[re.Match[str]], str]:
    """preg_replace's $1 / ${1} / \\1 references as a match -> text function."""
    parts: list[str | int] = []
    pos = 0
    for m in _PHP_REF_RE.finditer(rep):
        parts.append(rep[pos : m.start()])
        if m.group(0) == "\\\\":
            parts.append("\\")
        else:
            parts.append(int(m.group(1) or m.group(2) or m.group(3)))
        pos = m.end()
    parts.append(rep[pos:])

    def expand(match: re.Match[str]) -> str:
        out = []
        for p in parts:
            if type(p) is int:
                out.append(match.group(p) or "" if p <= (match.re.groups or 0) else "")
            else:
                out.append(p)
        return "".join(out)

    return expand


def f_regex_replace(pattern: Any, replacement: Any, subject: Any) -> str:
    name = "regex_replace"
    compiled, anchored = _pcre(name, _text(name, pattern))
    text = _text(name, subject)
    expand = _replacement(_text(name, replacement))
    total = [len(text)]

    def sized(m: re.Match[str]) -> str:
        piece = expand(m)
        total[0] += len(piece) - (m.end() - m.start())
        _sized_text(name, total[0])
        return piece

    if anchored:
        m = compiled.match(text)
        return text if m is None else sized(m) + text[m.end() :]
    return compiled.sub(sized, text)


_PREG_QUOTE_CHARS: Final = frozenset(".\\+*?[^]$(){}=!<>|:-#")


def f_regex_quote(value: Any, delimiter: Any = None) -> str:
    text = _text("regex_quote", value)
    extra = _text("regex_quote", delimiter) if delimiter is not None else ""
    out = []
    for ch in text:
        if ch in _PREG_QUOTE_CHARS or (extra and ch in extra):
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\000")
        else:
            out.append(ch)
    return "".join(out)
