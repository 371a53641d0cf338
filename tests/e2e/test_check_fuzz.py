"""Malformed task files and configs, generated from the seed: `check` exits 2 with JSON, no crash.

Every case starts from a file that passes `check` (the seed's examples and the example config)
and breaks it one way: truncated at many offsets, each value at each typed path replaced by
each wrong type (msgspec decides what "wrong" is, from the very specs the loader uses), nested
thousands deep, NUL bytes, invalid UTF-8, huge numbers and strings, binary garbage, an empty
file; with and without a byte-order mark and CRLF line ends. `check --json` runs in process.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from daemon.config.settings import ConfigSpec
from daemon.config.tasks import RetrySpec, ScheduleSpec, TaskSpec
from daemon.core.jsonc import _split_values, loads_jsonc, strip_jsonc
from steps import build_registry
from tests.conftest import CliRun

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "tests" / "data" / "seed"
SEED_FILES = sorted(SEED.glob("*.json"))
TOML_TASK = REPO / "tasks" / "crm_sync.toml"
REGISTRY = build_registry()
# One of each JSON type, plus a non-empty list and object; `None` is left out of TOML.
WRONG: list[Any] = [None, True, 7, 1.5, "text", [], {}, [1, "x"], {"k": 1}]
HUGE_INT = 10**400
DEEP = 5000


# --- the valid starting point --------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a config that every seed example passes `check` against: the demo tables
    (created once), a second data source so no state store is opened per check."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(REPO / "sql", root / "sql")
    (root / "sql" / "extra.sql").write_text(
        "CREATE TABLE IF NOT EXISTS large_dataset (id INTEGER PRIMARY KEY, data TEXT);\n"
    )
    (root / "config.toml").write_text(CONFIG)
    (root / "tasks").mkdir()
    return root


CONFIG = """\
[daemon]
timezone = "UTC"
default_data_source = "primary_database"
shutdown_timeout = "30s"
max_concurrent_runs = 64

[datasources.primary_database]
url = "sqlite:///demo.db"
init_sql = ["sql/demo_sqlite.sql", "sql/extra.sql"]

[datasources.spare]
url = "sqlite://:memory:"

[cache]
url = "memory://"
max_entries = 100

[http]
timeout = "30s"
max_connections = 10
block_private_networks = true
allow_hosts = ["127.0.0.0/8"]

[log]
level = "info"
format = "json"

[admin]
listen = ""
"""


def case_dir(base: Path, tmp_path: Path) -> Path:
    """A fresh copy of the base folder (the demo database file is shared, read-only here)."""
    root = tmp_path / "case"
    root.mkdir()
    (root / "tasks").mkdir()
    (root / "config.toml").write_text((base / "config.toml").read_text())
    (root / "sql").symlink_to(base / "sql")
    db = base / "demo.db"
    if db.exists():
        (root / "demo.db").symlink_to(db)
    return root


# --- JSON and TOML writers for mutated values ----------------------------------------------------


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return json.dumps(value)
    if isinstance(value, float):
        return "inf" if math.isinf(value) else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def to_toml(doc: dict[str, Any]) -> str:
    """Top-level keys as `key = value` (inline tables below), tables as `[section]`."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items() if not _table(v)]
    for key, value in doc.items():
        if _table(value):
            lines.append(f"[{_toml_key(key)}]")
            lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
    return "\n".join(lines) + "\n"


def _table(value: Any) -> bool:
    return isinstance(value, dict) and bool(value)


# --- which values are wrong where: the loader's own specs decide ---------------------------------


def _fields(spec: type[msgspec.Struct]) -> dict[str, Any]:
    return {f.encode_name: f.type for f in msgspec.structs.fields(spec)}


def _refused(value: Any, tp: Any, *, strict: bool = True) -> bool:
    try:
        msgspec.convert(value, tp, strict=strict)
    except msgspec.ValidationError:
        return True
    return False


Path_ = tuple[str | int, ...]


def typed_paths(task: dict[str, Any]) -> Iterator[tuple[Path_, Any]]:
    """(path, declared type) of every value in a task whose type a spec declares: the task's
    keys, schedule and retry, every step's fields (its Spec), nested step lists recursively."""
    nested = {"schedule": ScheduleSpec, "retry": RetrySpec}
    for key, tp in _fields(TaskSpec).items():
        if key not in task:
            continue
        yield (key,), tp
        inner = nested.get(key)
        if inner is not None and isinstance(task[key], dict):
            for sub, sub_tp in _fields(inner).items():
                if sub in task[key]:
                    yield (key, sub), sub_tp
    for key in ("function_stack", "on_failure"):
        if isinstance(task.get(key), list):
            yield from _step_paths(task[key], (key,))


def _step_paths(steps: list[Any], prefix: Path_) -> Iterator[tuple[Path_, Any]]:
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        yield (*prefix, i), dict[str, Any]
        cls = REGISTRY.lookup(step.get("function", ""))
        if cls is None:
            continue
        fields = _fields(cls.Spec)
        for key, value in step.items():
            if key in fields:
                yield (*prefix, i, key), fields[key]
            if (
                isinstance(value, list)
                and value
                and all(isinstance(v, dict) and "function" in v for v in value)
            ):
                yield from _step_paths(value, (*prefix, i, key))


def replaced(doc: Any, path: Path_, value: Any) -> Any:
    """A deep copy of `doc` with the value at `path` replaced."""
    copy = json.loads(json.dumps(doc))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def label(path: Path_) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


# --- the cases -----------------------------------------------------------------------------------

Case = tuple[str, str, bytes]  # (file the bytes go to, what is wrong, the bytes)


def _task_cases() -> Iterator[Case]:
    for seed in SEED_FILES:
        text = seed.read_text()
        name = f"tasks/{seed.name}"
        # Truncated inside the last top-level value (always unbalanced: a cut between two
        # values of a several-steps file would leave a valid file), at a spread of offsets.
        start, end = _split_values(strip_jsonc(text))[-1]
        for offset in sorted({start + 1 + (end - start - 2) * k // 4 for k in range(5)}):
            yield name, f"truncated@{offset}", text[:offset].encode()
        values = loads_jsonc(text)
        task = values[0] if len(values) == 1 and isinstance(values[0], dict) else None
        if task is None:
            task = {"function_stack": values if len(values) > 1 else values[0]}
        yield from _wrong_types(name, task, to_json)


def _toml_task_cases() -> Iterator[Case]:
    task = tomllib.loads(TOML_TASK.read_text())
    name = "tasks/crm_sync.toml"
    text = TOML_TASK.read_text()
    # Cut inside a quoted string: an unterminated string is never valid TOML.
    quotes = [m.start() + 3 for m in re.finditer(r'= "[^"]{4,}"', text)][:6]
    for offset in quotes:
        yield name, f"truncated-in-string@{offset}", text[:offset].encode()
    yield from _wrong_types(name, task, to_toml)


def _wrong_types(name: str, task: dict[str, Any], dump: Callable[[Any], str]) -> Iterator[Case]:
    """At every typed path, two of the types its spec refuses (taking turns through WRONG, so
    every type is tried across the paths while the table stays fast)."""
    turn = 0
    for path, tp in typed_paths(task):
        refused = [w for w in WRONG if not (w is None and dump is to_toml) and _refused(w, tp)]
        for k in range(min(2, len(refused))):
            wrong = refused[(turn + k) % len(refused)]
            yield (
                name,
                f"{label(path)}={json.dumps(wrong)}",
                dump(replaced(task, path, wrong)).encode(),
            )
        turn += 1


def _config_cases() -> Iterator[Case]:
    """Each key of each section of the config (each data source's too) given each type its spec
    refuses, read as the loader reads config.toml (not strict: "5" may be a number)."""
    config = tomllib.loads(CONFIG)
    for section, tp in _fields(ConfigSpec).items():
        if not isinstance(config.get(section), dict):
            continue
        info = msgspec.inspect.type_info(tp)
        if isinstance(info, msgspec.inspect.DictType):  # datasources: NAME -> DataSourceSpec
            assert isinstance(info.value_type, msgspec.inspect.StructType)
            fields = _fields(info.value_type.cls)
            paths = [((section, k, f), fields[f]) for k, v in config[section].items() for f in v]
        else:
            fields = _fields(tp)
            paths = [((section, f), fields[f]) for f in config[section]]
        for path, field_type in paths:
            for wrong in WRONG:
                if wrong is None or not _refused(wrong, field_type, strict=False):
                    continue
                data = to_toml(replaced(config, path, wrong)).encode()
                yield "config.toml", f"{label(path)}={json.dumps(wrong)}", data
    for offset in [m.start() + 3 for m in re.finditer(r'= "[^"]{3,}"', CONFIG)][:8]:
        yield "config.toml", f"truncated-in-string@{offset}", CONFIG[:offset].encode()


def doc(**fields: Any) -> bytes:
    """A task file: name "b", an empty function_stack, and `fields` over them."""
    return json.dumps({"name": "b", "function_stack": [], **fields}).encode()


def _hostile_cases() -> Iterator[Case]:
    stack = '"function_stack": []'
    step = '{"function": "Create Variable", "name": "v", "value": %s}'
    for depth in (300, 500, 990, DEEP):
        deep_list = "[" * depth + "]" * depth
        deep_obj = '{"a": ' * depth + "1" + "}" * depth
        yield (
            "tasks/deep.json",
            f"deep-list-{depth}",
            ('{"name": "d", "function_stack": [' + step % deep_list + "]}").encode(),
        )
        yield (
            "tasks/deep.json",
            f"deep-object-{depth}",
            ('{"name": "d", "function_stack": [' + step % deep_obj + "]}").encode(),
        )
        yield "tasks/deep.json", f"deep-file-{depth}", deep_list.encode()
        yield (
            "tasks/deep.toml",
            f"toml-deep-array-{depth}",
            (f"name = 'd'\nx = {'[' * depth}{']' * depth}\n").encode(),
        )
        yield (
            "tasks/deep.toml",
            f"toml-deep-inline-{depth}",
            ("name = 'd'\nx = " + "{a = " * depth + "1" + "}" * depth + "\n").encode(),
        )
        yield (
            "tasks/deep.toml",
            f"toml-deep-tables-{depth}",
            ("name = 'd'\n[" + ".".join(["a"] * depth) + "]\nb = 1\n").encode(),
        )
        yield (
            "config.toml",
            f"config-deep-{depth}",
            (CONFIG + "[x]\ny = " + "[" * depth + "]" * depth + "\n").encode(),
        )
    yield "tasks/nul.json", "nul-in-name", ('{"name": "a\\u0000b", ' + stack + "}").encode()
    yield "tasks/nul.json", "raw-nul", b'{"name": "a\x00b", "function_stack": []}'
    yield "tasks/nul.toml", "toml-raw-nul", b'name = "a\x00b"\nfunction_stack = []\n'
    yield "tasks/nul.toml", "toml-escaped-nul", b'name = "a\\u0000b"\nfunction_stack = []\n'
    yield "config.toml", "config-raw-nul", CONFIG.replace('"UTC"', '"U\x00TC"').encode()
    yield "tasks/utf8.json", "invalid-utf8", b'{"name": "caf\xe9", "function_stack": []}'
    yield "tasks/utf8.toml", "toml-invalid-utf8", b'name = "caf\xe9"\n'
    yield "config.toml", "config-invalid-utf8", CONFIG.replace("UTC", "\xff").encode("latin-1")
    yield "tasks/big.json", "huge-int-attempts", doc(retry={"max_attempts": HUGE_INT})
    for key, value in [
        ("timeout", 1e300),
        ("timeout", "99999999999999999999d"),
        ("timeout", HUGE_INT),
        ("timeout", "367d"),
        ("timeout", -1),
        ("timeout", "9" * 400 + "s"),
        ("misfire_grace", 1e300),
        ("jitter", "400d"),
        ("history_retention", "40000d"),
    ]:
        yield "tasks/big.json", f"huge-{key}-{str(value)[:12]}", doc(**{key: value})
    yield "tasks/big.toml", "toml-huge-int", f'name = "b"\nhistory_max_runs = {HUGE_INT}\n'.encode()
    yield "tasks/big.toml", "toml-timeout-1e300", b'name = "b"\ntimeout = 1e300\n'
    yield "tasks/big.toml", "toml-timeout-inf", b'name = "b"\ntimeout = inf\n'
    yield "tasks/big.toml", "toml-timeout-nan", b'name = "b"\ntimeout = nan\n'
    huge = CONFIG.replace('"30s"', '"99999999999999999999d"', 1)
    yield "config.toml", "config-huge-timeout", huge.encode()
    yield "config.toml", "config-huge-int", CONFIG.replace("64", str(HUGE_INT)).encode()
    inf = CONFIG.replace('timeout = "30s"', "timeout = inf")
    yield "config.toml", "config-timeout-inf", inf.encode()
    yield "tasks/long.json", "huge-name", doc(name="n" * 100_000)
    yield "tasks/long.json", "newline-in-name", doc(name="a\nb")
    yield "tasks/long.json", "huge-cron", doc(schedule="* " * 50_000)
    yield "tasks/empty.json", "empty-file", b""
    yield "tasks/empty.json", "whitespace-only", b"  \n\t\r\n"
    yield "tasks/empty.json", "comments-only", b"// nothing here\n/* at all */\n"
    yield "tasks/empty.toml", "toml-empty", b""
    yield "tasks/empty.json", "null-document", b"null"
    yield "tasks/empty.json", "number-document", b"42"
    yield "tasks/empty.json", "string-document", b'"task"'
    yield "tasks/empty.json", "list-of-numbers", b"[1, 2, 3]"
    yield "tasks/empty.json", "unterminated-comment", b'{"name": "x"} /* no end'
    rng = random.Random(11)
    for i in range(6):
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        yield "tasks/garbage.json", f"binary-{i}", garbage
        yield "tasks/garbage.toml", f"toml-binary-{i}", garbage
    yield "config.toml", "config-binary", bytes(rng.randrange(256) for _ in range(300))
    yield "config.toml", "config-truncated-header", b"[daemon\ntimezone = 1\n"


def _with_bom_and_crlf(cases: list[Case]) -> Iterator[Case]:
    """Every 8th case again with a byte-order mark and CRLF line ends: still exit 2."""
    for file, what, data in cases[::8]:
        yield file, f"{what}+bom+crlf", b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n")


def _all_cases() -> list[Case]:
    cases = [*_task_cases(), *_toml_task_cases(), *_config_cases(), *_hostile_cases()]
    return cases + list(_with_bom_and_crlf(cases))


CASES = _all_cases()


def write_case(root: Path, file: str, data: bytes) -> None:
    (root / file).write_bytes(data)


# --- the property --------------------------------------------------------------------------------


def check_json(cli: CliRun, root: Path) -> tuple[int, dict[str, Any], str]:
    code, out, err = cli("check", "-c", str(root / "config.toml"), "--json")
    return code, json.loads(out), err


def _group(case: Case) -> str:
    """Cases from one seed file together; the config's; the hand-written hostile ones."""
    file = case[0]
    if file == "config.toml":
        return "config"
    if file in {f"tasks/{p.name}" for p in [*SEED_FILES, TOML_TASK]}:
        return file
    return "hostile"


GROUPS: dict[str, list[Case]] = {}
for _case in CASES:
    GROUPS.setdefault(_group(_case), []).append(_case)


@pytest.mark.parametrize("group", GROUPS, ids=list(GROUPS))
def test_malformed_input_is_exit_2_naming_the_file(
    cli: CliRun, base: Path, tmp_path: Path, group: str
) -> None:
    """For every case: `check --json` exits 2 with one JSON document whose errors name the
    broken file; no traceback, no crash. (Cases run in groups so the table stays fast.)"""
    root = case_dir(base, tmp_path)
    config = (root / "config.toml").read_bytes()
    failures: list[str] = []
    for file, what, data in GROUPS[group]:
        write_case(root, file, data)
        try:
            code, doc, err = check_json(cli, root)
        except Exception as exc:  # not JSON on stdout, or main() itself raised
            failures.append(f"{file}:{what}: {type(exc).__name__}: {exc}"[:300])
            continue
        finally:
            if file == "config.toml":
                (root / "config.toml").write_bytes(config)
            else:
                (root / file).unlink()
        problems = []
        if "Traceback" in err:
            problems.append("traceback on stderr")
        if code != 2 or doc["valid"] is not False or not doc["errors"]:
            problems.append(f"exit {code}, valid={doc['valid']}")
        if not any(e["file"].endswith(file) for e in doc["errors"]):
            problems.append(f"no error names {file}: {[e['file'] for e in doc['errors']]}")
        if any(set(e) != {"file", "path", "line", "column", "message"} for e in doc["errors"]):
            problems.append("an error without the contract's keys")
        if problems:
            failures.append(f"{file}:{what}: {'; '.join(problems)}"[:300])
    assert not failures, f"{len(failures)} of {len(GROUPS[group])} cases:\n" + "\n".join(failures)


@pytest.mark.parametrize("seed", [*SEED_FILES, TOML_TASK], ids=lambda p: p.name)
@pytest.mark.parametrize("variant", ["as-is", "bom+crlf"])
def test_every_starting_point_is_valid(
    cli: CliRun, base: Path, tmp_path: Path, seed: Path, variant: str
) -> None:
    """The unmutated files pass (so exit 2 above is the mutation's doing), also with a BOM and
    CRLF line ends, which are not errors."""
    root = case_dir(base, tmp_path)
    data = seed.read_bytes()
    if variant != "as-is":
        data = b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n")
    write_case(root, f"tasks/{seed.name}", data)
    code, doc, err = check_json(cli, root)
    assert code == 0 and doc["valid"], doc["errors"]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "case", [c for c in CASES if c[1] in ("nul-in-name", "deep-file-5000", "binary-0")]
)
def test_malformed_input_through_a_real_process(tmp_path: Path, base: Path, case: Case) -> None:
    """The same property through `cronstack check` as a subprocess (stdout is the JSON alone)."""
    root = case_dir(base, tmp_path)
    write_case(root, case[0], case[2])
    done = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "check", "-c", str(root / "config.toml"), "--json"],
        capture_output=True,
        cwd=REPO,
        timeout=30,
    )
    assert done.returncode == 2 and b"Traceback" not in done.stderr
    assert json.loads(done.stdout)["valid"] is False


def test_case_table_is_large_and_covers_every_kind() -> None:
    """Hundreds of cases, across truncation, wrong types, nesting and hostile bytes."""
    kinds: dict[str, Callable[[str], bool]] = {
        "truncated": lambda w: w.startswith("truncated"),
        "wrong type": lambda w: "=" in w,
        "deep": lambda w: "deep" in w,
        "bom+crlf": lambda w: w.endswith("+bom+crlf"),
        "config": lambda w: w.startswith("config") or w.startswith(("daemon", "http", "cache")),
    }
    whats = [c[1] for c in CASES]
    assert len(CASES) >= 300
    for kind, match in kinds.items():
        assert sum(map(match, whats)) >= 10, kind
