"""The daemon's adaptive debounce (appliance.recompute.RecomputeTimer) on a clock that moves only when
told: a lone change is recomputed at once, the changes of a burst coalesce into one recompute per
debounce interval."""

from __future__ import annotations

import pytest

from appliance.recompute import RecomputeTimer


def run(timer: RecomputeTimer, changes: list[float], compute_s: float = 0.0) -> list[float]:
    """Start times of the recomputes a daemon loop makes for changes at the given times (sorted): it
    waits `delay`, then one recompute takes every change made up to its start."""
    starts: list[float] = []
    pending = sorted(changes)
    now = 0.0
    while pending:
        now = max(now, pending[0])
        now += timer.delay(now)
        timer.started(now)
        starts.append(now)
        pending = [t for t in pending if t > now]
        now += compute_s
    return starts


@pytest.mark.parametrize(("name", "changes", "compute_s", "starts"), [
    ("first change ever goes at once", [5.0], 0.0, [5.0]),
    ("lone changes far apart each go at once", [1.0, 2.0, 3.5], 0.0, [1.0, 2.0, 3.5]),
    ("a change just after a recompute waits out the interval", [1.0, 1.05], 0.0, [1.0, 1.2]),
    ("a burst coalesces: first at once, the rest in one", [1.0, 1.01, 1.02, 1.1, 1.15], 0.0, [1.0, 1.2]),
    ("a long burst: one recompute per interval", [1.0 + i * 0.05 for i in range(10)], 0.0,
     [1.0, 1.2, 1.4, 1.6]),
    ("a slow engine already spaces them: no extra wait", [1.0, 1.1, 1.6], 0.3, [1.0, 1.3, 1.6]),
    ("exactly one interval later counts as idle", [1.0, 1.2], 0.0, [1.0, 1.2]),
])
def test_recompute_start_times(name: str, changes: list[float], compute_s: float, starts: list[float]
                               ) -> None:
    got = run(RecomputeTimer(0.2), changes, compute_s)
    assert got == pytest.approx(starts), name


def test_delay_counts_from_the_last_start() -> None:
    timer = RecomputeTimer(0.2)
    assert timer.delay(100.0) == 0.0
    timer.started(100.0)
    assert timer.delay(100.05) == pytest.approx(0.15)
    assert timer.delay(100.2) == 0.0
    assert timer.delay(250.0) == 0.0


def test_zero_debounce_never_waits() -> None:
    timer = RecomputeTimer(0.0)
    timer.started(1.0)
    assert timer.delay(1.0) == 0.0
