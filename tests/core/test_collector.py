"""The cyclic GC's settings: paused around bursts, tuned thresholds for the daemon."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from daemon.core.collector import DAEMON_THRESHOLDS, gc_paused, tune_for_daemon


@pytest.fixture
def gc_as_found() -> Iterator[None]:
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.set_threshold(*thresholds)
    (gc.enable if enabled else gc.disable)()


@pytest.mark.usefixtures("gc_as_found")
def test_paused_for_the_block_and_restored_as_it_was() -> None:
    gc.enable()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # it was off before: it stays off


@pytest.mark.usefixtures("gc_as_found")
def test_the_daemon_collects_its_young_generation_less_often() -> None:
    gc.set_threshold(700, 10, 10)
    tune_for_daemon()
    assert gc.get_threshold() == DAEMON_THRESHOLDS
