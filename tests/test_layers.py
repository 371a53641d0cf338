"""The parts of daemon/ import only downwards (README "Layout"); steps only the step contract."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Which parts each part may import, besides itself (README "Layout" draws the same rows).
# Type-only imports (under `if TYPE_CHECKING:`) count too: a type is a dependency.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "config": {"core"},
    "expr": {"core"},
    "resources": {"core"},
    "steps.base": {"core", "expr", "resources"},
    "steps": {"core", "expr", "resources", "steps.base"},
    "xano": {"core", "config", "expr"},
    "engine": {"core", "config", "expr", "resources", "steps.base"},
    "scheduling": {"core", "engine", "resources"},
    "state": {"core", "resources"},
    "ops": {"core", "engine", "resources", "scheduling", "state"},
    "web": {"core", "engine", "ops", "resources", "scheduling", "state"},
    "testing": {"core"},
    # the top: the command line, the service and its side services, over the composition root
    "top": {
        "core", "config", "expr", "resources", "engine", "scheduling", "state", "ops", "web",
        "xano", "steps.base", "bootstrap",
    },
    "bootstrap": {
        "core", "config", "expr", "resources", "engine", "scheduling", "state", "ops", "web",
        "xano", "steps.base", "steps",
    },
}  # fmt: skip
TOP_MODULES = {"cli", "service", "sidecars"}


def part_of(module: str) -> str | None:
    """The part a dotted module name belongs to, or None for third-party/stdlib modules."""
    parts = module.split(".")
    if parts[0] == "steps":
        return "steps.base" if module == "steps.base" else "steps"
    if parts[0] != "daemon":
        return None
    if len(parts) == 1:
        return "top"
    head = parts[1]
    if head == "bootstrap":
        return "bootstrap"
    if head in TOP_MODULES:
        return "top"
    return head


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    names = list(rel.parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from daemon.ops import logs` imports the module daemon.ops.logs too
            found.extend(
                (node.lineno, f"{node.module}.{a.name}")
                for a in node.names
                if _exists(f"{node.module}.{a.name}")
            )
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names)
    return found


def sources() -> list[Path]:
    return sorted([*ROOT.joinpath("daemon").rglob("*.py"), *ROOT.joinpath("steps").rglob("*.py")])


def edges() -> list[tuple[str, int, str, str, str]]:
    """(file, line, importing part, imported module, imported part) for every import."""
    out = []
    for path in sources():
        here = part_of(module_name(path))
        assert here is not None
        for line, target in imports(path):
            there = part_of(target)
            if there is None or target in ("daemon", "steps"):
                continue
            out.append((str(path.relative_to(ROOT)), line, here, target, there))
    return out


def _exists(module: str) -> bool:
    """True when a dotted name is one of our modules or packages (not a name inside one)."""
    base = ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py").exists() or base.joinpath("__init__.py").exists()


def test_every_part_is_known() -> None:
    """Every module of daemon/ and steps/ belongs to a part the table names."""
    unknown = {part_of(module_name(p)) for p in sources()} - set(ALLOWED)
    assert not unknown, f"parts missing from ALLOWED: {unknown}"


def test_imports_only_go_down() -> None:
    """No import goes up or sideways between parts; step families see only the step contract,
    the expression language, resources and the vocabulary."""
    bad = [
        f"{file}:{line}: {here} imports {target} ({there})"
        for file, line, here, target, there in edges()
        if there != here and there not in ALLOWED[here]
    ]
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_cycle_between_daemon_and_steps() -> None:
    """Only the composition root imports step families; steps.base imports no engine part."""
    step_users = {here for _, _, here, _, there in edges() if there == "steps"}
    assert step_users <= {"steps", "bootstrap"}
    engine_in_steps = [
        (file, target)
        for file, _, here, target, there in edges()
        if here in ("steps", "steps.base")
        and there in {"engine", "scheduling", "state", "ops", "web", "top"}
    ]
    assert not engine_in_steps


@pytest.mark.parametrize(
    ("module", "part"),
    [
        ("daemon.core.runs", "core"),
        ("daemon.state.store", "state"),
        ("daemon.cli", "top"),
        ("daemon.bootstrap", "bootstrap"),
        ("steps.base", "steps.base"),
        ("steps.http", "steps"),
        ("steps._sql", "steps"),
        ("asyncpg", None),
    ],
)
def test_part_of(module: str, part: str | None) -> None:
    """The table's own lookup: modules map to the parts the README names."""
    assert part_of(module) == part


def test_the_checker_sees_a_bad_edge(tmp_path: Path) -> None:
    """A made-up upward import is caught (the check can fail)."""
    bad = tmp_path / "m.py"
    bad.write_text("from daemon.scheduling.scheduler import Scheduler\n")
    (_, target), *_ = imports(bad)
    assert part_of(target) == "scheduling"
    assert "scheduling" not in ALLOWED["state"]
