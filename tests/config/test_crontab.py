"""`cronstack import-crontab`: crontab lines to tasks, table-driven over real-world lines; the
output passes `check` and fires when cron would."""

from __future__ import annotations

import json
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import given
from hypothesis import strategies as st

from daemon.config.crontab import convert, program_name, slug, split_percent, to_toml, toml_string
from tests.conftest import CliRun

# Debian's default /etc/crontab (bookworm), as installed.
DEBIAN_ETC_CRONTAB = """\
# /etc/crontab: system-wide crontab
# Unlike any other crontab you don't have to run the `crontab'
# command to install the new version when you edit this file
# and files in /etc/cron.d. These files also have username fields,
# that none of the other crontabs do.

SHELL=/bin/sh
# You can also override PATH, but by default, newer versions inherit it from the environment
#PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin

# Example of job definition:
# .---------------- minute (0 - 59)
# |  .------------- hour (0 - 23)
# |  |  .---------- day of month (1 - 31)
# |  |  |  .------- month (1 - 12) OR jan,feb,mar,apr ...
# |  |  |  |  .---- day of week (0 - 6) (Sunday=0 or 7) OR sun,mon,tue,wed,thu,fri,sat
# |  |  |  |  |
# *  *  *  *  * user-name command to be executed
17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly
25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }
47 6\t* * 7\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }
52 6\t1 * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.monthly; }
#
"""

# A user crontab with the shapes people write (`crontab -l` of a busy web server).
USER_CRONTAB = """\
# m h  dom mon dow   command
MAILTO=ops@example.com
PATH=/usr/local/bin:/usr/bin:/bin
*/5 * * * * /usr/bin/php /var/www/app/artisan schedule:run >> /dev/null 2>&1
0 9-17 * * MON-FRI curl -fsS https://hc.example.com/ping/abc > /dev/null
30 2 1 JAN * /usr/local/bin/yearly-report.sh
@daily  flock -n /tmp/backup.lock /usr/local/bin/backup.sh
@midnight nice -n 10 /opt/app/bin/cleanup --days 30
@annually echo "happy new year"
0 0 * * * tar czf /backup/www-$(date +\\%Y\\%m\\%d).tgz /var/www
15 3 * * 0,6 mail -s "weekend report" root%Hello,%the report is attached.%
0 0 L * * /usr/local/bin/month-end
0 12 15W * * /usr/local/bin/payroll
0 8 * * 1#1 /usr/local/bin/first-monday
@reboot /usr/local/bin/start-worker
CRON_TZ=America/New_York
30 2 * * * /usr/local/bin/nightly
TZ=Asia/Tokyo
0 0 * * sun GREETING=hi /usr/local/bin/weekly
this line is not a crontab entry
61 * * * * /bin/true
@every 5m /bin/true
0 0 * * *
"""


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("date +\\%Y-\\%m-\\%d", ("date +%Y-%m-%d", None)),
        ("printf '100\\%'", ("printf '100%'", None)),
        ("mail -s hi root%line 1%line 2", ("mail -s hi root", "line 1\nline 2\n")),
        ("mail root%body%", ("mail root", "body\n")),
        ("cat%", ("cat", "")),
        ("cat%50\\% done", ("cat", "50% done\n")),
        ("cat%a\\b", ("cat", "a\\b\n")),
        ("echo \\\\%rest", ("echo \\\\", "rest\n")),  # `\\` escapes a backslash: `%` still splits
        ("cat%x\\\\%y", ("cat", "x\\%y\n")),
        ("cat%x\\", ("cat", "x\\\n")),
        ("echo a\\tb", ("echo a\\tb", None)),  # other escapes are the shell's business
    ],
)
def test_split_percent_follows_crontab_5(command: str, expected: tuple[str, str | None]) -> None:
    """The first unescaped % starts stdin, later ones are newlines, \\% is a literal %."""
    assert split_percent(command) == expected


@pytest.mark.parametrize(
    ("command", "program"),
    [
        ("cd / && run-parts --report /etc/cron.hourly", "run-parts"),
        ("test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.d; }", "run-parts"),
        ("/usr/bin/php /var/www/app/artisan schedule:run >> /dev/null 2>&1", "php"),
        ("flock -n /tmp/backup.lock /usr/local/bin/backup.sh", "backup.sh"),
        ("nice -n 10 ionice -c3 /opt/app/bin/cleanup --days 30", "cleanup"),
        ("timeout 5m sudo -u www-data /srv/sync.py", "sync.py"),
        ("GREETING=hi LANG=C /usr/local/bin/weekly", "weekly"),
        ("sleep $((RANDOM % 60)); curl -fsS https://example.com", "curl"),
        ("[ -f /run/flag ] && exec /usr/local/bin/job", "job"),
        ('echo "unbalanced', "echo"),
        ("cd /tmp", "cd"),
    ],
)
def test_program_name(command: str, program: str) -> None:
    """Task names come from the program the line is about, past cd/test and wrappers."""
    assert program_name(command) == program


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ("run-parts", "run-parts"),
        ("backup.sh", "backup"),
        ("Sync_All.py", "sync-all"),
        ("", "command"),
    ],
)
def test_slug(program: str, expected: str) -> None:
    assert slug(program) == expected


USER_EXPECTED: list[tuple[int, str, str, str | None, str | None]] = [
    # (line, schedule, command, stdin, timezone)
    (4, "*/5 * * * *", "/usr/bin/php /var/www/app/artisan schedule:run >> /dev/null 2>&1",
     None, None),
    (5, "0 9-17 * * MON-FRI", "curl -fsS https://hc.example.com/ping/abc > /dev/null", None, None),
    (6, "30 2 1 JAN *", "/usr/local/bin/yearly-report.sh", None, None),
    (7, "@daily", "flock -n /tmp/backup.lock /usr/local/bin/backup.sh", None, None),
    (8, "@daily", "nice -n 10 /opt/app/bin/cleanup --days 30", None, None),
    (9, "@yearly", 'echo "happy new year"', None, None),
    (10, "0 0 * * *", "tar czf /backup/www-$(date +%Y%m%d).tgz /var/www", None, None),
    (11, "15 3 * * 0,6", 'mail -s "weekend report" root', "Hello,\nthe report is attached.\n",
     None),
    (12, "0 0 L * *", "/usr/local/bin/month-end", None, None),
    (13, "0 12 15W * *", "/usr/local/bin/payroll", None, None),
    (14, "0 8 * * 1#1", "/usr/local/bin/first-monday", None, None),
    (17, "30 2 * * *", "/usr/local/bin/nightly", None, "America/New_York"),
    (19, "0 0 * * sun", "GREETING=hi /usr/local/bin/weekly", None, "Asia/Tokyo"),
]  # fmt: skip


def test_user_crontab_entries() -> None:
    """Every entry of a real-world user crontab: schedule kept (names, ranges, steps, lists,
    macros, L W #), % split, CRON_TZ/TZ applied to the lines after them."""
    result = convert(USER_CRONTAB)
    got = [(t.line, t.schedule, t.command, t.stdin, t.timezone) for t in result.tasks]
    assert got == USER_EXPECTED
    assert all(t.user is None for t in result.tasks)


def test_environment_lines_apply_to_the_entries_after_them() -> None:
    """VAR=value lines become the env of later entries; MAILTO and CRON_TZ are not env; TZ is
    both the timezone and a variable; quotes around values are removed."""
    text = (
        "A=1\n* * * * * one\nB = ' two words '\nMAILTO=\"\"\nCRON_TZ=Europe/Paris\n"
        "* * * * * two\nTZ=UTC\n@hourly three\n"
    )
    result = convert(text)
    assert [t.env for t in result.tasks] == [
        {"A": "1"},
        {"A": "1", "B": " two words "},
        {"A": "1", "B": " two words ", "TZ": "UTC"},
    ]
    assert [t.timezone for t in result.tasks] == [None, "Europe/Paris", "UTC"]
    assert [(n.line, n.kind) for n in result.notes] == [(4, "note")]
    assert "MAILTO" in result.notes[0].message


def test_shell_and_random_delay() -> None:
    """SHELL= picks the interpreter (not an env entry); cronie's RANDOM_DELAY becomes jitter."""
    result = convert("SHELL=/bin/bash\nRANDOM_DELAY=7\n@hourly echo $BASH_VERSION\n")
    (task,) = result.tasks
    assert task.shell == "/bin/bash" and task.env == {} and task.jitter_minutes == 7
    doc = tomllib.loads(to_toml(result, source="crontab"))
    step = doc["task"][0]["function_stack"][0]
    assert step["command"] == ["/bin/bash", "-c", "echo $BASH_VERSION"] and "shell" not in step
    assert doc["task"][0]["schedule"] == {"cron_expression": "@hourly", "jitter": "7m"}


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("@reboot /usr/local/bin/start-worker", "@reboot"),
        ("@every 5m /bin/true", 'unknown macro "@every"'),
        ("this line is not a crontab entry", 'bad minute field "THIS"'),
        ("61 * * * * /bin/true", 'bad minute field "61"'),
        ("* * 32 * * /bin/true", "day-of-month"),
        ("0 0 * * *", "expected five time fields"),
        ("0 0 * * * %only stdin", "no command before the first %"),
        ("* * * * FOO", "expected five time fields"),
    ],
)
def test_unsupported_and_malformed_lines_are_reported_and_skipped(line: str, needle: str) -> None:
    """@reboot and lines that are not entries are skipped with a note naming the line."""
    result = convert(f"# header\n{line}\n")
    assert result.tasks == []
    (note,) = result.notes
    assert note.kind == "skipped" and note.line == 2 and needle in note.message, note


def test_template_braces_in_a_command_warn() -> None:
    """`{{` in a command would be read as a template by Run Command: a warning says so."""
    result = convert("* * * * * echo '{{not a template}}'\n")
    assert len(result.tasks) == 1
    assert [n.kind for n in result.notes] == ["warning"] and "{{ }}" in result.notes[0].message


def test_system_crontab_has_a_user_field() -> None:
    """--system: the sixth field is the user; it goes into tags and description, with a
    warning that cronstack runs commands as its own user."""
    result = convert(DEBIAN_ETC_CRONTAB, system=True)
    assert [(t.schedule, t.user) for t in result.tasks] == [
        ("17 * * * *", "root"),
        ("25 6 * * *", "root"),
        ("47 6 * * 7", "root"),
        ("52 6 1 * *", "root"),
    ]
    assert result.tasks[1].command == (
        "test -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }"
    )
    (note,) = result.notes
    assert note.kind == "warning" and 'lines 19, 20, 21, 22 ran as user "root"' in note.message
    doc = tomllib.loads(to_toml(result, source="/etc/crontab"))
    first = doc["task"][0]
    assert first["tags"] == ["crontab", "user:root"]
    assert first["description"].startswith('/etc/crontab line 19, as user "root": 17 * * * * root')


def test_names_are_slugs_with_a_stable_disambiguator_and_unique() -> None:
    """Names: program slug + 4 hex digits from the entry (stable across imports); an identical
    line twice still gets two names."""
    line = "0 * * * * /usr/local/bin/backup.sh\n"
    text = line + line + "@daily backup.sh x\n"
    names = [t.name for t in convert(text).tasks]
    assert names[0].startswith("backup-") and len(names[0]) == len("backup-") + 4
    assert names[1] == names[0] + "-2"
    assert names[2].startswith("backup-") and names[2] != names[0]
    assert [t.name for t in convert(text).tasks] == names


def test_toml_round_trip_of_the_whole_corpus() -> None:
    """The written TOML parses back to exactly the converted tasks."""
    result = convert(USER_CRONTAB, timezone="Europe/Berlin")
    doc = tomllib.loads(to_toml(result, source="crontab"))
    assert len(doc["task"]) == len(result.tasks)
    for task, table in zip(result.tasks, doc["task"], strict=True):
        (step,) = table["function_stack"]
        assert table["name"] == task.name and table["overlap"] == "allow"
        assert step["function"] == "Run Command" and step["shell"] is True
        assert step["command"] == task.command
        assert step.get("stdin") == task.stdin
        assert step.get("env", {}) == task.env
        assert table["schedule"] == {
            "cron_expression": task.schedule,
            "timezone": task.timezone or "Europe/Berlin",
        }


@given(st.text())
def test_toml_string_escapes_anything(text: str) -> None:
    """Any text (quotes, backslashes, control characters, non-ASCII) survives TOML."""
    assert tomllib.loads(f"k = {toml_string(text)}")["k"] == text


# --- the command line -------------------------------------------------------------------------


def write_config(folder: Path) -> Path:
    config = folder / "config.toml"
    config.write_text(
        '[daemon]\ntasks = ["crontab.toml"]\n\n[datasources.main]\nurl = "sqlite:///s.db"\n\n'
        '[admin]\nlisten = ""\n'
    )
    return config


CRON_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}


# cronsim has no `W` (cronstack adds it): the nearest weekdays to the 15th, read off a calendar
# (2026-03-15 is a Sunday, so the Monday after).
BY_HAND = {
    "0 12 15W * *": ["2026-03-16", "2026-04-15", "2026-05-15", "2026-06-15", "2026-07-15"],
}


def cronsim_next(expression: str, tz: str, start: datetime, n: int) -> list[datetime]:
    """The next fires of the crontab's own expression, by cronsim directly."""
    if expression in BY_HAND:
        return [datetime.fromisoformat(f"{d}T12:00:00+00:00") for d in BY_HAND[expression]][:n]
    text = CRON_MACROS.get(expression, expression).upper()
    it = CronSim(text, start.astimezone(ZoneInfo(tz)))
    return [next(it) for _ in range(n)]


@pytest.mark.parametrize(
    ("name", "text", "extra"),
    [
        ("debian", DEBIAN_ETC_CRONTAB, ["--system", "--timezone", "Europe/Berlin"]),
        ("user", USER_CRONTAB, ["--timezone", "UTC"]),
    ],
)
def test_generated_tasks_pass_check_and_fire_as_cron_would(
    cli: CliRun, tmp_path: Path, name: str, text: str, extra: list[str]
) -> None:
    """import-crontab -o, then `check --json`: valid, and each task's next 5 fires (across the
    US spring-forward night) are what cronsim gives for the original expression."""
    source = tmp_path / name
    source.write_text(text)
    out = tmp_path / "crontab.toml"
    code, stdout, stderr = cli("import-crontab", str(source), *extra, "-o", str(out))
    assert code == 0, stderr
    assert stdout == ""
    zone = extra[extra.index("--timezone") + 1]
    converted = convert(text, system="--system" in extra, timezone=zone)
    assert f"{len(converted.tasks)} task(s) from {source} written to {out}" in stderr
    config = write_config(tmp_path)
    start = "2026-03-07T12:00:00Z"
    code, stdout, _ = cli("check", "-c", str(config), "--json", "--next", "5", "--from", start)
    doc: dict[str, Any] = json.loads(stdout)
    assert code == 0 and doc["valid"], doc["errors"]
    by_name = {t["name"]: t for t in doc["tasks"]}
    assert set(by_name) == {t.name for t in converted.tasks}
    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    for task in converted.tasks:
        shown = by_name[task.name]
        tz = task.timezone or "UTC"
        assert shown["timezone"] == tz and shown["cron"] == task.schedule
        fires = [datetime.fromisoformat(f) for f in shown["next"]]
        assert fires == cronsim_next(task.schedule, tz, begin, 5), task.schedule


def test_stdout_and_notes(cli: CliRun, tmp_path: Path) -> None:
    """Without -o the TOML goes to stdout; notes and skipped lines go to stderr; exit 0."""
    source = tmp_path / "crontab"
    source.write_text(USER_CRONTAB)
    code, stdout, stderr = cli("import-crontab", str(source))
    assert code == 0
    doc = tomllib.loads(stdout)
    assert len(doc["task"]) == len(USER_EXPECTED)
    assert f"{source}:2: note: MAILTO is not supported" in stderr
    assert f"{source}:15: skipped: @reboot" in stderr
    assert f"{source}:20: skipped: invalid cron expression" in stderr
    assert "5 line(s) skipped" in stderr
    assert "use [daemon] timezone" in stderr


def test_stdin_dash(cli: CliRun, monkeypatch: pytest.MonkeyPatch) -> None:
    """`-` reads the crontab from standard input (`crontab -l | cronstack import-crontab -`)."""
    import io
    import sys

    class Stdin:
        buffer = io.BytesIO(b"@hourly /usr/bin/true\n")

    monkeypatch.setattr(sys, "stdin", Stdin)
    code, stdout, _ = cli("import-crontab", "-", "--timezone", "UTC")
    assert code == 0
    assert tomllib.loads(stdout)["task"][0]["schedule"]["cron_expression"] == "@hourly"


@pytest.mark.parametrize("what", ["missing", "directory", "timezone"])
def test_unreadable_input_exits_2(cli: CliRun, tmp_path: Path, what: str) -> None:
    """A file that cannot be read (or an unknown --timezone) exits 2 with the reason."""
    args = [str(tmp_path / "nope")] if what == "missing" else [str(tmp_path)]
    if what == "timezone":
        (tmp_path / "c").write_text("@daily x\n")
        args = [str(tmp_path / "c"), "--timezone", "Mars/Olympus"]
    code, stdout, stderr = cli("import-crontab", *args)
    assert code == 2 and stdout == ""
    assert stderr.startswith("error:"), stderr
