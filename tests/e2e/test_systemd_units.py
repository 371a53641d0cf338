"""The files under systemd/ as systemd and logrotate read them: `systemd-analyze verify` on every
unit and drop-in, `logrotate -d` on the logrotate file. Any complaint fails the test."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNITS = sorted(
    p for p in SYSTEMD_DIR.iterdir() if p.suffix in {".service", ".socket", ".timer", ".path"}
)
DROP_INS = sorted(SYSTEMD_DIR.glob("*.d/*.conf"))
LOGROTATE = SYSTEMD_DIR / "cronstack.logrotate"

# The install path the unit names, and this test's own `cronstack` script in its place:
# `systemd-analyze verify` fails on an ExecStart= binary that does not exist.
SHIPPED_CRONSTACK = "/opt/cronstack/.venv/bin/cronstack"
CRONSTACK = Path(sys.executable).parent / "cronstack"
SHIPPED_LOG_DIR = "/var/log/cronstack/"

# systemd-analyze is in /usr/bin, logrotate in /usr/sbin (not on a non-root PATH on Debian).
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
SYSTEMD_ANALYZE = shutil.which("systemd-analyze", path=_SEARCH_PATH)
LOGROTATE_BIN = shutil.which("logrotate", path=_SEARCH_PATH)

needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed: cannot verify the units"
)


def _clean_env() -> dict[str, str]:
    # The caller's SYSTEMD_* variables would change what is verified and printed
    # (SYSTEMD_UNIT_PATH where units are looked up, SYSTEMD_LOG_LEVEL which messages show).
    return {k: v for k, v in os.environ.items() if not k.startswith("SYSTEMD_")}


def _systemd_version() -> int:
    assert SYSTEMD_ANALYZE is not None
    out = subprocess.run(
        [SYSTEMD_ANALYZE, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    match = re.match(r"systemd (\d+)", out)
    assert match, f"unexpected `systemd-analyze --version` output: {out!r}"
    return int(match.group(1))


def _copy(src: Path, dest: Path) -> Path:
    """`src` written to `dest` with ExecStart= pointing at this virtualenv's `cronstack`.

    Nothing else is substituted: systemd-analyze verify (checked by hand on systemd 252) does
    not look at User=/Group= (a user that does not exist passes), WorkingDirectory=,
    EnvironmentFile=-..., or whether sandboxing paths exist; it does check every Exec*= binary,
    so ExecReload=/bin/kill is verified as shipped."""
    assert CRONSTACK.is_file(), f"{CRONSTACK} missing: pip install -e . into this virtualenv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(src.read_text().replace(SHIPPED_CRONSTACK, str(CRONSTACK)))
    return dest


def _verify(unit: Path) -> tuple[int, list[str]]:
    """Exit status and every line systemd-analyze printed (stdout and stderr).

    No line is filtered out: on this machine (Debian 12, systemd 252, root or not) a clean unit
    prints nothing at all. `--man=no`: the units name no man pages, and the check would depend
    on `man` being installed. The unit is looked up by its file's folder first, then the
    system's unit path (so Wants=network-online.target resolves as on a real machine); drop-ins
    beside the unit file are read (test_verify_reads_drop_ins_next_to_the_unit)."""
    assert SYSTEMD_ANALYZE is not None
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=30,
        env=_clean_env(),
    )
    return proc.returncode, (proc.stdout + proc.stderr).splitlines()


def test_the_files_are_found() -> None:
    assert [p.name for p in UNITS] == ["cronstack.service"]
    assert [str(p.relative_to(SYSTEMD_DIR)) for p in DROP_INS] == [
        "cronstack.service.d/notify-reload.conf"
    ]
    assert LOGROTATE.is_file()


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_units_need_no_systemd_253(unit: Path) -> None:
    """A newer systemd-analyze would accept these without a word; systemd 249-252 ignores them
    (Type= falls back to simple), so the unit the README installs must not use them."""
    text = unit.read_text()
    assert not re.search(r"^\s*Type\s*=\s*notify-reload", text, re.MULTILINE)
    assert not re.search(r"^\s*ReloadSignal\s*=", text, re.MULTILINE)
    if unit.name == "cronstack.service":
        assert re.search(r"^Type=notify$", text, re.MULTILINE)
        assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", text, re.MULTILINE)


@needs_systemd_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_verifies_without_a_word(unit: Path, tmp_path: Path) -> None:
    copy = _copy(unit, tmp_path / "x" / unit.name)
    status, lines = _verify(copy)
    assert lines == []
    assert status == 0


@needs_systemd_analyze
def test_verify_reads_drop_ins_next_to_the_unit(tmp_path: Path) -> None:
    """What makes the drop-in test below meaningful: a bad key in a drop-in beside the unit
    file is reported."""
    copy = _copy(SYSTEMD_DIR / "cronstack.service", tmp_path / "x" / "cronstack.service")
    bad = tmp_path / "x" / "cronstack.service.d" / "bad.conf"
    bad.parent.mkdir()
    bad.write_text("[Service]\nNoSuchKey=1\n")
    _, lines = _verify(copy)
    assert lines == [f"{bad}:2: Unknown key 'NoSuchKey' in section [Service], ignoring."]


def _newer_systemd_only(drop_in: Path) -> list[str]:
    """The lines systemd < 253 prints for the settings it does not know in `drop_in`."""
    lines = []
    for number, line in enumerate(drop_in.read_text().splitlines(), start=1):
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "Type" and value == "notify-reload":
            lines.append(f"{drop_in}:{number}: Failed to parse service type, ignoring: {value}")
        elif key == "ReloadSignal":
            lines.append(
                f"{drop_in}:{number}: Unknown key 'ReloadSignal' in section [Service], ignoring."
            )
    return lines


@pytest.mark.parametrize("drop_in", DROP_INS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notify_reload_drop_in_drops_exec_reload(drop_in: Path) -> None:
    """notify-reload sends ReloadSignal= and also runs ExecReload=: the unit's
    ExecReload=/bin/kill -HUP $MAINPID kept would mean two SIGHUPs per reload. verify cannot
    see that (it checks only the first command of each Exec*= list: a drop-in appending a
    missing binary to the unit's ExecReload= passes it on systemd 252), hence this check."""
    text = drop_in.read_text()
    if not re.search(r"^Type=notify-reload$", text, re.MULTILINE):
        pytest.skip(f"{drop_in.name} does not set Type=notify-reload")
    assert re.findall(r"^ExecReload=.*$", text, re.MULTILINE) == ["ExecReload="]


@needs_systemd_analyze
@pytest.mark.parametrize("drop_in", DROP_INS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_drop_in_verifies_with_its_unit(drop_in: Path, tmp_path: Path) -> None:
    """The unit with the drop-in applied, laid out as in /etc/systemd/system.

    notify-reload.conf is for systemd >= 253. There it must verify without a word. An older
    systemd-analyze (252 here) cannot understand Type=notify-reload or ReloadSignal=: then the
    exact two lines saying so must be everything it prints, which still shows the drop-in is
    read and that the rest of it (the empty ExecReload=) is valid."""
    unit_name = drop_in.parent.name.removesuffix(".d")
    unit = _copy(SYSTEMD_DIR / unit_name, tmp_path / "x" / unit_name)
    copy = _copy(drop_in, tmp_path / "x" / drop_in.parent.name / drop_in.name)
    status, lines = _verify(unit)
    if _systemd_version() >= 253:
        assert lines == []
    else:
        expected = _newer_systemd_only(copy)
        assert expected, "only a drop-in using systemd >= 253 settings may print anything"
        assert lines == expected
    assert status == 0


def test_logrotate_file_matches_the_unit() -> None:
    """Rotated files are where the unit's LogsDirectory= is, and that folder is not
    group-writable (logrotate refuses such a folder without `su`)."""
    unit = (SYSTEMD_DIR / "cronstack.service").read_text()
    assert re.search(r"^LogsDirectory=cronstack$", unit, re.MULTILINE)
    assert re.search(r"^LogsDirectoryMode=0750$", unit, re.MULTILINE)
    patterns = re.findall(r"^(/\S+)\s*\{", LOGROTATE.read_text(), re.MULTILINE)
    assert patterns == [SHIPPED_LOG_DIR + "*.log"]


# The only line the filter below lets through: `logrotate -d` always prints it (to say that -d
# changes nothing), whatever the config. Every other line starting with error/warning fails.
DEBUG_BANNER = "warning: logrotate in debug mode does nothing except printing debug messages!"


def test_logrotate_file(tmp_path: Path) -> None:
    """`logrotate -d -f` (print what a forced rotation would do, change nothing) on a copy whose
    log folder is a temporary one (0750, as LogsDirectoryMode=) and whose `create` owner is this
    test's user: the cronstack user does not exist here and logrotate rejects unknown users."""
    if LOGROTATE_BIN is None:
        pytest.skip("logrotate is not installed: cannot check systemd/cronstack.logrotate")
    text = LOGROTATE.read_text()
    owner = "create 0640 cronstack cronstack"
    assert text.count(owner) == 1
    log_dir = tmp_path / "log"
    log_dir.mkdir(mode=0o750)
    log_dir.chmod(0o750)
    log = log_dir / "cronstack.log"
    log.write_text('{"event": "started"}\n')
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    conf = tmp_path / "cronstack.logrotate"
    conf.write_text(
        text.replace(SHIPPED_LOG_DIR, f"{log_dir}/").replace(owner, f"create 0640 {user} {group}")
    )
    proc = subprocess.run(
        [LOGROTATE_BIN, "-d", "-f", "-s", str(tmp_path / "state"), str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    complaints = [
        line
        for line in lines
        if line.startswith(("error", "warning")) and not line.startswith(DEBUG_BANNER)
    ]
    assert complaints == []
    assert proc.returncode == 0
    out = "\n".join(lines)
    assert f"renaming {log} to {log}.1" in out
    assert f"creating new {log} mode = 0640" in out
    assert "running postrotate script" in out
    assert "systemctl reload cronstack.service" in out
    assert log.read_text() == '{"event": "started"}\n'  # -d changed nothing
