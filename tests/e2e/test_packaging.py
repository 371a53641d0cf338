"""A plain (non-editable) install gets every module: the wheel holds all of daemon/ and steps/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_holds_every_module(tmp_path: Path) -> None:
    # Built from a copy so the build's own build/ and *.egg-info never land in the checkout.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("daemon", "steps"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("cronstack-*.whl")
    in_wheel = {name for name in zipfile.ZipFile(wheel).namelist() if name.endswith(".py")}
    in_tree = {
        path.relative_to(ROOT).as_posix()
        for package in ("daemon", "steps")
        for path in (ROOT / package).rglob("*.py")
    }
    assert in_tree - in_wheel == set(), "modules a plain `pip install` would leave out"
