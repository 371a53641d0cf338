"""XanoScript parser, documents: a task's or a function's settings, inputs and schedule.

`_Parser`, the top of the layers (`cursor` → `exprparse` → `stmtparse` → this module), is the
class `parser.parse_document` runs on a `task` or `function` file. Unknown settings are skipped
and reported as warnings; `test` blocks are skipped (unit tests do not run in a daemon).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from daemon.core.errors import Issue
from daemon.xano.cursor import _describe
from daemon.xano.lexer import EOF, IDENT, INT, RAW, STR, TS, Comment, Token
from daemon.xano.nodes import (
    ArrayLit,
    Attr,
    BoolLit,
    Entry,
    Event,
    Expr,
    FunctionDoc,
    Ident,
    InputFilter,
    InputParam,
    IntLit,
    Name,
    ObjectLit,
    Stmt,
    StrLit,
    TaskDoc,
)
from daemon.xano.stmtparse import _StmtParser

_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})([+-])(\d{2})(\d{2})\Z")


class _Parser(_StmtParser):
    """The documents: a task's or a function's settings, inputs and schedule."""

    # --- documents -----------------------------------------------------------------------------

    def parse_doc_name(self, kind: str) -> str:
        tok = self.tok
        if tok.kind == STR:
            self.advance()
            assert isinstance(tok.value, str)
            return tok.value
        if tok.kind == IDENT and not tok.nl:
            name = self.parse_target()
            assert isinstance(name, Name)
            return name.value
        self.fail(f'expected the {kind} name (a word or a "quoted name"), found {_describe(tok)}')

    def string_setting(self, key: Token) -> str:
        value = self.parse_expr()
        if not isinstance(value, StrLit):
            self.fail(f'{key.text} must be a "string"', key)
        return value.value

    def tags_setting(self, key: Token) -> tuple[str, ...]:
        value = self.parse_expr()
        if not isinstance(value, ArrayLit) or not all(isinstance(i, StrLit) for i in value.items):
            self.fail('tags must be a list of strings: tags = ["a", "b"]', key)
        return tuple(i.value for i in value.items if isinstance(i, StrLit))

    def history_setting(self, key: Token) -> bool | int | str | None:
        value = self.parse_expr()
        if isinstance(value, BoolLit | IntLit):
            if isinstance(value, IntLit) and value.value < 0:
                self.fail("history must not be negative", key)
            return value.value
        word = value.value if isinstance(value, StrLit) else getattr(value, "name", None)
        if isinstance(value, StrLit | Ident) and word in ("inherit", "all"):
            return word
        if isinstance(value, ObjectLit):  # older exports: history = {inherit: true}
            entry = value.entries[0] if len(value.entries) == 1 else None
            if (
                isinstance(entry, Entry)
                and entry.key == "inherit"
                and isinstance(entry.value, BoolLit)
                and entry.value.value
            ):
                return "inherit"
            self.warn(key, "history object not understood (expected {inherit: true}); ignored")
            return None
        self.fail('history must be "inherit", "all", true, false or a number', key)

    def warn(self, tok: Token, message: str) -> None:
        self.warnings.append(
            Issue(self.file, tok.text, message, tok.line, tok.column, severity="warning")
        )

    def skip_item(self) -> None:
        """Skip an unknown document setting: `key = value…` to the end of its line (brackets
        balanced) or `key [name] { … }`."""
        depth = 0
        first = True
        while self.tok.kind != EOF:
            tok = self.tok
            if not first and depth == 0 and (tok.nl or tok.kind == "}"):
                return
            first = False
            if tok.kind in ("(", "[", "{"):
                depth += 1
            elif tok.kind in (")", "]", "}"):
                depth -= 1
                if depth == 0 and tok.kind == "}":
                    self.advance()
                    return
            self.advance()

    def parse_schedule(self) -> tuple[Event, ...]:
        if self.tok.kind == "=":
            self.advance()
            return self.parse_events()
        if self.tok.kind != "{" or self.tok.nl:
            return ()  # a bare `schedule` (language server grammar): no events
        opener = self.advance()
        events: tuple[Event, ...] = ()
        seen = False
        while self.tok.kind != "}":
            if self.tok.kind == EOF:
                self.unclosed("}", opener, "schedule")
            if not self.is_word("events") or self.peek().kind != "=":
                self.fail(
                    f'expected "events = [ … ]" in schedule {{ }}, found {_describe(self.tok)}'
                )
            if seen:
                self.fail('"events" is given twice in this schedule')
            seen = True
            self.advance()
            self.advance()
            events = self.parse_events()
        self.advance()
        return events

    def parse_events(self) -> tuple[Event, ...]:
        if self.tok.kind != "[":
            self.fail(f'expected "[" and the schedule events, found {_describe(self.tok)}')
        opener = self.advance()
        events: list[Event] = []
        while self.tok.kind != "]":
            if self.tok.kind == EOF:
                self.unclosed("]", opener, "list of events")
            if self.tok.kind != "{":
                self.fail(
                    f"expected an event {{starts_on: …, freq: …}}, found {_describe(self.tok)}"
                )
            events.append(self.parse_event())
            self.separator("]", opener, "list of events")
        self.advance()
        return tuple(events)

    def parse_event(self) -> Event:
        opener = self.advance()
        values: dict[str, object] = {}
        seen: dict[str, Token] = {}
        while self.tok.kind != "}":
            if self.tok.kind == EOF:
                self.unclosed("}", opener, "event")
            key_tok, key = self.parse_key("event")
            if key not in ("starts_on", "freq", "ends_on"):
                self.fail(
                    f'unknown schedule event key "{key}": expected starts_on, freq or ends_on',
                    key_tok,
                )
            if key in seen:
                self.fail(f'"{key}" is given twice in this event', key_tok)
            seen[key] = key_tok
            if self.tok.kind == "=":
                self.fail(f'write "{key}: value" in an event: keys take ":", not "="')
            self.expect(":", f'after "{key}"')
            value = self.tok
            if key == "freq":
                if value.kind != INT or not isinstance(value.value, int) or value.value <= 0:
                    self.fail("freq is a whole number of seconds greater than 0, like 3600")
                values[key] = value.value
            elif value.kind in (TS, STR):
                values[key] = self.timestamp(value)
            else:
                self.fail(
                    f"{key} needs a timestamp like 2025-01-01 00:00:00+0000, found "
                    f"{_describe(value)}"
                )
            self.advance()
            self.separator("}", opener, "event")
        self.advance()
        starts_on = values.get("starts_on")
        if not isinstance(starts_on, datetime):
            self.fail(
                "a schedule event needs starts_on: {starts_on: 2025-01-01 00:00:00+0000}", opener
            )
        freq = values.get("freq")
        ends_on = values.get("ends_on")
        return Event(
            starts_on=starts_on,
            freq=freq if isinstance(freq, int) else None,
            ends_on=ends_on if isinstance(ends_on, datetime) else None,
            line=opener.line,
            column=opener.column,
        )

    def timestamp(self, tok: Token) -> datetime:
        text = str(tok.value)
        m = _TIMESTAMP.match(text)
        if m is None:
            self.fail(
                f'invalid timestamp "{text}": write YYYY-MM-DD HH:MM:SS+0000 (one space, '
                "seconds, and a 4-digit UTC offset)",
                tok,
            )
        year, month, day, hour, minute, second, sign, off_h, off_m = m.groups()
        try:
            if int(off_m) >= 60:
                raise ValueError("offset minutes must be below 60")
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            zone = timezone(-offset if sign == "-" else offset)
            return datetime(
                int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=zone
            )
        except ValueError as exc:
            self.fail(f'invalid timestamp "{text}": {exc}', tok)

    def parse_task(self, comments: list[Comment]) -> TaskDoc:
        keyword = self.advance()
        name = self.parse_doc_name("task")
        opener = self.open_control("the task name")
        settings: dict[str, object] = {}
        seen: dict[str, Token] = {}
        while self.tok.kind != "}":
            tok = self.tok
            if tok.kind == EOF:
                self.fail(f'expected "}}" to close the task opened at line {opener.line}')
            if tok.kind != IDENT:
                self.fail(
                    f"expected a task setting (description, stack, schedule…), found "
                    f"{_describe(tok)}"
                )
            key = tok.text
            first = seen.get(key)
            if first is not None and key != "test":
                self.fail(f'"{key}" is given twice in this task (first at line {first.line})')
            seen[key] = tok
            self.advance()
            if key == "stack":
                settings[key] = self.parse_stack("stack") if self.same_line() else ()
            elif key == "schedule":
                settings[key] = self.parse_schedule()
            elif key == "test":
                self.skip_item()  # unit tests do not run in a daemon
            elif key in (
                "description",
                "datasource",
                "docs",
                "guid",
                "active",
                "tags",
                "history",
                "middleware",
            ):
                self.expect("=", f"after {key}")
                settings[key] = self.task_setting(tok)
            else:
                self.warn(tok, f'unknown task setting "{key}" skipped')
                self.skip_item()
        self.advance()
        self.depth -= 1
        self.end_of_document("task")
        description = settings.get("description")
        if description is None:
            description = _comment_description(comments, keyword.line)
        return TaskDoc(
            name=name,
            description=description if isinstance(description, str) else None,
            active=settings.get("active", True) is True,
            datasource=_opt_str(settings.get("datasource")),
            tags=_str_tuple(settings.get("tags")),
            history=_history(settings.get("history")),
            docs=_opt_str(settings.get("docs")),
            guid=_opt_str(settings.get("guid")),
            middleware=_opt_expr(settings.get("middleware")),
            schedule=_events(settings.get("schedule")),
            stack=_stmt_tuple(settings.get("stack")),
            warnings=tuple(self.warnings),
            line=keyword.line,
            column=keyword.column,
        )

    def task_setting(self, key: Token) -> object:
        name = key.text
        if name in ("description", "datasource", "docs", "guid"):
            return self.string_setting(key)
        if name == "tags":
            return self.tags_setting(key)
        if name == "history":
            return self.history_setting(key)
        value = self.parse_expr()
        if name == "active":
            if not isinstance(value, BoolLit):
                self.fail("active must be true or false", key)
            return value.value
        if not isinstance(value, ObjectLit):  # middleware
            self.fail("middleware must be an object: {pre: [...], post: [...]}", key)
        return value

    def parse_function(self, comments: list[Comment]) -> FunctionDoc:
        keyword = self.advance()
        name = self.parse_doc_name("function")
        opener = self.open_control("the function name")
        settings: dict[str, object] = {}
        seen: dict[str, Token] = {}
        while self.tok.kind != "}":
            tok = self.tok
            if tok.kind == EOF:
                self.fail(f'expected "}}" to close the function opened at line {opener.line}')
            if tok.kind != IDENT:
                self.fail(
                    f"expected a function setting (input, stack, response…), found {_describe(tok)}"
                )
            key = tok.text
            first = seen.get(key)
            if first is not None and key != "test":
                self.fail(f'"{key}" is given twice in this function (first at line {first.line})')
            seen[key] = tok
            self.advance()
            if key == "stack":
                settings[key] = self.parse_stack("stack") if self.same_line() else ()
            elif key == "input":
                settings[key] = self.parse_inputs()
            elif key == "response" and self.tok.kind == "{":  # old form: response { value = x }
                attrs, _ = self.parse_attr_block("response")
                settings[key] = next((a.value for a in attrs if a.key == "value"), None)
            elif key == "response":
                self.expect("=", "after response")
                settings[key] = self.parse_expr()
            elif key == "test":
                self.skip_item()
            elif key in ("description", "docs", "guid"):
                self.expect("=", f"after {key}")
                settings[key] = self.string_setting(tok)
            elif key == "tags":
                self.expect("=", "after tags")
                settings[key] = self.tags_setting(tok)
            elif key == "history":
                self.expect("=", "after history")
                settings[key] = self.history_setting(tok)
            else:
                self.warn(tok, f'unknown function setting "{key}" skipped')
                self.skip_item()
        self.advance()
        self.depth -= 1
        self.end_of_document("function")
        description = settings.get("description")
        if description is None:
            description = _comment_description(comments, keyword.line)
        inputs = settings.get("input", ())
        assert isinstance(inputs, tuple)
        return FunctionDoc(
            name=name,
            description=description if isinstance(description, str) else None,
            inputs=inputs,
            stack=_stmt_tuple(settings.get("stack")),
            response=_opt_expr(settings.get("response")),
            tags=_str_tuple(settings.get("tags")),
            history=_history(settings.get("history")),
            docs=_opt_str(settings.get("docs")),
            guid=_opt_str(settings.get("guid")),
            warnings=tuple(self.warnings),
            line=keyword.line,
            column=keyword.column,
        )

    def parse_inputs(self) -> tuple[InputParam, ...]:
        if self.tok.kind != "{":
            self.fail(f'expected "{{" after input, found {_describe(self.tok)}')
        opener = self.advance()
        self.enter(opener)
        params: list[InputParam] = []
        while self.tok.kind != "}":
            if self.tok.kind == EOF:
                self.unclosed("}", opener, "input block")
            params.append(self.parse_input_param())
        self.advance()
        self.depth -= 1
        return tuple(params)

    def parse_input_param(self) -> InputParam:
        type_tok = self.tok
        if type_tok.kind != IDENT:
            self.fail(
                f'expected an input declaration such as "text name", found {_describe(type_tok)}'
            )
        last = self.advance()
        nullable = is_list = False
        bounds: str | None = None
        while True:  # modifiers glued to the type: text?  text[]  int[1:10]
            if self.tok.kind == "?" and not self.tok.nl:  # also the old spaced form "text ?x"
                nullable = True
                last = self.advance()
            elif self.tok.kind == "[" and self.adjacent(last):
                open_bracket = self.advance()
                while self.tok.kind not in ("]", EOF):
                    self.advance()
                if self.tok.kind != "]":
                    self.unclosed("]", open_bracket, "list type")
                inner = self.text[open_bracket.end : self.tok.pos].strip()
                bounds = inner or None
                is_list = True
                last = self.advance()
            else:
                break
        name = ""
        if self.tok.kind in (IDENT, STR) and not self.tok.nl:
            name_tok = self.advance()
            name = name_tok.text if name_tok.kind == IDENT else str(name_tok.value)
            last = name_tok
        optional = False
        if self.tok.kind == "?" and self.adjacent(last):
            optional = True
            self.advance()
        default: Expr | None = None
        if self.tok.kind == "=" and not self.tok.nl:
            self.advance()
            default = self.parse_expr()
        filters: tuple[InputFilter, ...] = ()
        if self.tok.kind == RAW:
            filters = self.input_filters(self.advance())
        attrs: list[Attr] = []
        schema: tuple[InputParam, ...] | None = None
        if self.tok.kind == "{" and not self.tok.nl:
            opener = self.advance()
            self.enter(opener)
            seen: dict[str, Token] = {}
            while self.tok.kind != "}":
                if self.tok.kind == EOF:
                    self.unclosed("}", opener, f'input "{name}"')
                if self.parse_attr(attrs, seen, f'input "{name}"'):
                    continue
                if self.is_word("schema") and self.peek().kind == "{":
                    self.advance()
                    schema = self.parse_inputs()
                    continue
                self.fail(
                    f'expected "key = value" or "schema {{ … }}" in the input "{name}", '
                    f"found {_describe(self.tok)}"
                )
            self.advance()
            self.depth -= 1
        return InputParam(
            type=type_tok.text,
            name=name,
            nullable=nullable,
            optional=optional or default is not None,
            is_list=is_list,
            list_bounds=bounds,
            default=default,
            filters=filters,
            attrs=tuple(attrs),
            schema=schema,
            line=type_tok.line,
            column=type_tok.column,
        )

    def input_filters(self, tok: Token) -> tuple[InputFilter, ...]:
        filters: list[InputFilter] = []
        offset = 0
        for part in tok.text.split("|"):
            column = tok.column + offset
            offset += len(part) + 1
            if not part:
                self.fail("empty filter name in filters=", tok)
            if part.startswith("!"):  # a disabled input filter
                continue
            name, *args = part.split(":")
            filters.append(InputFilter(name=name, args=tuple(args), line=tok.line, column=column))
        return tuple(filters)

    def end_of_document(self, kind: str) -> None:
        tok = self.tok
        if tok.kind == EOF:
            return
        if tok.kind == "-" and self.text.startswith("---", tok.pos):
            self.fail(
                f'a .xs file holds one construct, but a "---" line follows the {kind}: '
                "split a multidoc export into one file per document"
            )
        if tok.kind == IDENT:
            self.fail(f'a .xs file holds one construct; a second one ("{tok.text}") starts here')
        self.fail(f"unexpected {_describe(tok)} after the end of the {kind}")


def _comment_description(comments: list[Comment], before_line: int) -> str | None:
    lines = [
        c.text[1:] if c.text.startswith(" ") else c.text for c in comments if c.line < before_line
    ]
    return "\n".join(lines) if lines else None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_expr(value: object) -> Expr | None:
    return value if isinstance(value, Expr) else None


def _str_tuple(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, tuple) else ()


def _stmt_tuple(value: object) -> tuple[Stmt, ...]:
    return tuple(v for v in value if isinstance(v, Stmt)) if isinstance(value, tuple) else ()


def _events(value: object) -> tuple[Event, ...] | None:
    if not isinstance(value, tuple):
        return None
    return tuple(v for v in value if isinstance(v, Event))


def _history(value: object) -> bool | int | str | None:
    return value if isinstance(value, bool | int | str) else None
