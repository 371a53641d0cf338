"""`cronstack import-crontab`: crontab(5) lines to TOML tasks with one Run Command step each."""

from __future__ import annotations

import hashlib
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from daemon.core.cron import CronSchedule

# cron's own macros; cronstack knows the same ones (`@annually` and `@midnight` are written as
# their common spellings).
MACROS = {
    "@hourly": "@hourly",
    "@daily": "@daily",
    "@midnight": "@daily",
    "@weekly": "@weekly",
    "@monthly": "@monthly",
    "@yearly": "@yearly",
    "@annually": "@yearly",
}
# Variables cron uses to mail a job's output: cronstack keeps output in the run's trace instead.
MAIL_VARIABLES = frozenset({"MAILTO", "MAILFROM", "CONTENT_TYPE", "CONTENT_TRANSFER_ENCODING"})
DEFAULT_SHELL = "/bin/sh"

# `NAME = value`, the name optionally quoted (crontab(5)); a schedule line never matches, since
# its first field is followed by blanks and another field, not by "=".
_ENV_LINE = re.compile(r"""^(?P<name>"[^"]*"|'[^']*'|[^\s="']+)\s*=\s*(?P<value>.*)$""")
_FIVE_FIELDS = re.compile(r"^(\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s+(.*)$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Words after which a new command starts: shlex's punctuation runs ("&&", "));") holding a
# separator, and the shell's reserved words for groups.
_SEPARATORS = frozenset(";&|()")
_GROUP_WORDS = frozenset({"{", "}", "!"})
_PUNCTUATION = frozenset("();<>|&")
_SUBSTITUTION = re.compile(r"\$\(\(.*?\)\)|\$\([^()]*\)|`[^`]*`")
# Words that start a command line but say nothing about what the job is.
_NOT_THE_JOB = frozenset(
    {"cd", "test", "[", "[[", "true", ":", "set", "export", "umask", "sleep", "if", "then",
     "else", "elif", "fi", "do", "done", "while", "until", "for", "echo"}
)  # fmt: skip
# Wrappers whose job is the command they run: how many positional arguments (a duration, a lock
# file) come before that command, and which of their options take a value (`nice -n 10`).
_WRAPPERS: dict[str, tuple[int, frozenset[str]]] = {
    "exec": (0, frozenset()),
    "nohup": (0, frozenset()),
    "chronic": (0, frozenset()),
    "time": (0, frozenset()),
    "setsid": (0, frozenset()),
    "command": (0, frozenset()),
    "nice": (0, frozenset({"-n", "--adjustment"})),
    "ionice": (0, frozenset({"-c", "-n", "-p", "--class", "--classdata"})),
    "env": (0, frozenset({"-u", "-C", "--unset", "--chdir"})),
    "sudo": (0, frozenset({"-u", "-g", "-C", "-h", "-p", "-U", "--user", "--group"})),
    "stdbuf": (0, frozenset({"-i", "-o", "-e"})),
    "timeout": (1, frozenset({"-s", "-k", "--signal", "--kill-after"})),
    "flock": (1, frozenset({"-w", "-E", "--timeout", "--conflict-exit-code"})),
}
_SCRIPT_SUFFIXES = (".sh", ".bash", ".py", ".pl", ".rb", ".php")


@dataclass(frozen=True, slots=True)
class Note:
    """Something the user should know about one line (or the whole file when `line` is None)."""

    line: int | None
    kind: str  # "skipped" | "warning" | "note"
    message: str

    def format(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line is not None else source
        return f"{where}: {self.kind}: {self.message}"


@dataclass(slots=True)
class CrontabTask:
    """One crontab entry, ready to be written as a task."""

    name: str
    line: int
    text: str  # the line as written, for the description
    schedule: str
    command: str
    stdin: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    shell: str = DEFAULT_SHELL
    timezone: str | None = None
    jitter_minutes: int | None = None
    user: str | None = None


@dataclass(slots=True)
class Conversion:
    tasks: list[CrontabTask] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def skipped(self) -> list[Note]:
        return [n for n in self.notes if n.kind == "skipped"]


def split_percent(command: str) -> tuple[str, str | None]:
    """crontab(5)'s `%`, as cron's own loop reads it: the first unescaped `%` ends the command
    and the rest is its standard input, where each unescaped `%` is a newline. A backslash
    escapes the next character; `\\%` becomes `%` and every other escape stays as written (for
    the shell). cron ends non-empty input with a newline. Returns (command, stdin or None)."""
    out: list[str] = []
    rest: str | None = None
    escaped = False
    for i, ch in enumerate(command):
        if escaped:
            escaped = False
            if ch == "%":
                out[-1] = "%"  # the backslash goes
            else:
                out.append(ch)
            continue
        if ch == "%":
            rest = command[i + 1 :]
            break
        escaped = ch == "\\"
        out.append(ch)
    if rest is None:
        return "".join(out), None
    data: list[str] = []
    escaped = need_newline = False
    for ch in rest:
        if escaped:
            if ch != "%":
                data.append("\\")
        elif ch == "%":
            ch = "\n"
        escaped = ch == "\\"  # as cron: even right after an escape
        if not escaped:
            data.append(ch)
            need_newline = ch != "\n"
    if escaped:
        data.append("\\")
    if need_newline:
        data.append("\n")
    return "".join(out), "".join(data)


def program_name(command: str) -> str:
    """The program a command line is about: `cd / && run-parts ...` -> "run-parts",
    `flock -n /tmp/x /usr/local/bin/backup.sh` -> "backup.sh"."""
    # What `$((...))`, `$(...)` and backquotes compute is an argument, not the job.
    command = _SUBSTITUTION.sub("x", command)
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: good enough for a name
        tokens = command.split()
    at_start = True
    wrapper: tuple[int, frozenset[str]] | None = None
    positionals = 0
    skip_next = False
    first = ""
    for token in tokens:
        if token in _GROUP_WORDS or (
            set(token) <= _PUNCTUATION and not _SEPARATORS.isdisjoint(token)
        ):
            at_start, wrapper = True, None
            continue
        if not at_start:
            continue
        if skip_next:  # the value of a wrapper's option
            skip_next = False
            continue
        if wrapper is not None and token.startswith("-"):
            skip_next = token in wrapper[1]
            continue
        if wrapper is not None and positionals:
            positionals -= 1
            continue
        if _ASSIGNMENT.match(token):
            continue
        base = posixpath.basename(token.rstrip("/")) or token
        first = first or base
        if base in _WRAPPERS:
            wrapper = _WRAPPERS[base]
            positionals = wrapper[0]
            continue
        if base in _NOT_THE_JOB:
            at_start = False
            continue
        return base
    return first or "command"


def slug(program: str) -> str:
    name = program.lower()
    for suffix in _SCRIPT_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    name = re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:40].strip("-")
    return name or "command"


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def convert(text: str, *, system: bool = False, timezone: str | None = None) -> Conversion:
    """Convert a crontab's text. `system`: the /etc/crontab format, with a user field.
    `timezone`: for every task until a CRON_TZ/TZ line says otherwise (None: the daemon's)."""
    result = Conversion()
    env: dict[str, str] = {}
    zone = timezone
    jitter: int | None = None
    names: set[str] = set()
    users: dict[str, list[int]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        env_match = _ENV_LINE.match(line)
        if env_match:
            name = _unquote(env_match.group("name"))
            value = _unquote(env_match.group("value").strip())
            zone, jitter = _environment_line(number, name, value, env, zone, jitter, result)
            continue
        task = _entry(number, line, system=system, result=result)
        if task is None:
            continue
        # SHELL= picks the interpreter (as in cron); the other variables are the command's.
        task.env = {k: v for k, v in env.items() if k != "SHELL"}
        task.shell = env.get("SHELL", DEFAULT_SHELL)
        task.timezone = zone
        task.jitter_minutes = jitter
        digest = hashlib.sha1(
            "\0".join([task.user or "", task.schedule, task.command, task.stdin or ""]).encode(),
            usedforsecurity=False,
        ).hexdigest()
        base = f"{slug(program_name(task.command))}-{digest[:4]}"
        unique, k = base, 2
        while unique in names:
            unique, k = f"{base}-{k}", k + 1
        names.add(unique)
        task.name = unique
        if "{{" in task.command or "{{" in (task.stdin or ""):
            result.notes.append(
                Note(
                    number,
                    "warning",
                    "the command holds {{ }}, which Run Command reads as a template (and refuses "
                    "in a shell line): `cronstack check` will point at it; rewrite that part",
                )
            )
        if task.user is not None:
            users.setdefault(task.user, []).append(number)
        result.tasks.append(task)
    for user, lines in users.items():
        where = ("lines " if len(lines) > 1 else "line ") + ", ".join(map(str, lines))
        result.notes.append(
            Note(
                None,
                "warning",
                f'{where} ran as user "{user}"; cronstack runs every command as its own '
                "user (with its HOME and permissions): check that they can work that way",
            )
        )
    return result


def _environment_line(
    number: int,
    name: str,
    value: str,
    env: dict[str, str],
    zone: str | None,
    jitter: int | None,
    result: Conversion,
) -> tuple[str | None, int | None]:
    """Apply one `NAME=value` line to what the following entries get; returns the new
    timezone and jitter."""
    if name in MAIL_VARIABLES:
        result.notes.append(
            Note(
                number,
                "note",
                f"{name} is not supported: cronstack does not mail output; it keeps it in each "
                "run's step trace (`cronstack history`, the dashboard); use a task's on_failure "
                "to alert",
            )
        )
        return zone, jitter
    if name in ("CRON_TZ", "TZ"):
        if _valid_zone(value):
            zone = value
        else:
            result.notes.append(
                Note(number, "warning", f'{name}: unknown timezone "{value}", ignored')
            )
        if name == "CRON_TZ":
            return zone, jitter  # only for scheduling; TZ is also the commands' variable
    if name == "RANDOM_DELAY":  # cronie: a random delay of up to this many minutes
        if value.isdigit():
            return zone, int(value) or None
        result.notes.append(Note(number, "warning", f'RANDOM_DELAY "{value}" is not minutes'))
        return zone, jitter
    env[name] = value
    return zone, jitter


def _entry(number: int, line: str, *, system: bool, result: Conversion) -> CrontabTask | None:
    """Parse a schedule line; None (with a note saying why) when it is skipped."""
    want = (
        "five time fields (or an @macro), a user and a command"
        if system
        else ("five time fields (or an @macro) and a command")
    )
    if line.startswith("@"):
        macro, *tail = line.split(None, 1)
        rest = tail[0] if tail else ""
        key = macro.lower()
        if key == "@reboot":
            result.notes.append(
                Note(
                    number,
                    "skipped",
                    "@reboot has no cronstack equivalent (tasks fire on schedules); run it from "
                    f"a systemd unit instead: {line}",
                )
            )
            return None
        if key not in MACROS:
            result.notes.append(Note(number, "skipped", f'unknown macro "{macro}": {line}'))
            return None
        schedule = MACROS[key]
    else:
        match = _FIVE_FIELDS.match(line)
        if match is None:
            result.notes.append(Note(number, "skipped", f"expected {want}: {line}"))
            return None
        schedule = " ".join(match.group(1).split())
        rest = match.group(2)
    user: str | None = None
    if system:
        user, *tail = rest.split(None, 1) or [""]
        rest = tail[0] if tail else ""
    if not rest.strip():
        result.notes.append(Note(number, "skipped", f"expected {want}: {line}"))
        return None
    try:
        CronSchedule(schedule, ZoneInfo("UTC"))
    except ValueError as exc:
        result.notes.append(Note(number, "skipped", f"{exc}: {line}"))
        return None
    command, stdin = split_percent(rest.strip())
    if not command.strip():
        result.notes.append(Note(number, "skipped", f"no command before the first %: {line}"))
        return None
    return CrontabTask(
        name="",
        line=number,
        text=line,
        schedule=schedule,
        command=command.strip(),
        stdin=stdin,
        user=user,
    )


# --- TOML output ------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else toml_string(key)


def to_toml(conversion: Conversion, *, source: str) -> str:
    """The tasks as a TOML task file (`[[task]]` tables), with a header saying what to review."""
    lines = [
        f"# Tasks converted by `cronstack import-crontab` from {source}.",
        "# Review them, add this file to [daemon] tasks, then run `cronstack check`:",
        "# - each command runs with /bin/sh -c (or the crontab's SHELL) as the daemon's user,",
        "#   in the daemon's environment plus the crontab's VAR=value lines (cron's default",
        "#   PATH was /usr/bin:/bin; without a PATH line the daemon's PATH applies);",
        '# - overlap = "allow" keeps cron\'s behaviour (a fire starts even if the previous one',
        '#   still runs); "skip", cronstack\'s default, is often what a job wants;',
        "# - output is kept in each run's step trace, not mailed; add on_failure to alert.",
    ]
    for task in conversion.tasks:
        where = f"{source} line {task.line}"
        if task.user is not None:
            where += f', as user "{task.user}"'
        tags = ["crontab"] + ([f"user:{task.user}"] if task.user is not None else [])
        lines += [
            "",
            "[[task]]",
            f"name = {toml_string(task.name)}",
            f"description = {toml_string(where + ': ' + ' '.join(task.text.split()))}",
            "tags = [" + ", ".join(toml_string(t) for t in tags) + "]",
        ]
        schedule = [f"cron_expression = {toml_string(task.schedule)}"]
        if task.timezone is not None:
            schedule.append(f"timezone = {toml_string(task.timezone)}")
        if task.jitter_minutes:
            schedule.append(f'jitter = "{task.jitter_minutes}m"')
        if len(schedule) == 1:
            lines.append(f"schedule = {toml_string(task.schedule)}")
        else:
            lines.append("schedule = { " + ", ".join(schedule) + " }")
        lines += ['overlap = "allow"', "", "[[task.function_stack]]", 'function = "Run Command"']
        if task.shell in (DEFAULT_SHELL, "sh"):
            lines += ["shell = true", f"command = {toml_string(task.command)}"]
        else:
            # Another SHELL= runs the line as cron would, by that shell's -c.
            argv = [task.shell, "-c", task.command]
            lines.append("command = [" + ", ".join(toml_string(a) for a in argv) + "]")
        if task.stdin is not None:
            lines.append(f"stdin = {toml_string(task.stdin)}")
        if task.env:
            pairs = ", ".join(f"{toml_key(k)} = {toml_string(v)}" for k, v in task.env.items())
            lines.append(f"env = {{ {pairs} }}")
    return "\n".join(lines) + "\n"
