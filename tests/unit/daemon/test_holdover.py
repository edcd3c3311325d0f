"""The holdover guard (appliance/speakers/holdover.py) with a real child process: it keeps the child while
its owner lives, stops it once the owner has been gone for the grace time, and an owner is that very
process (PID and start time), not a later one that got its PID."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from appliance.speakers.holdover import (
    GUARD_FILE,
    OWNER_FILE,
    alive,
    claim,
    claim_held_over,
    guard_argv,
    guard_pid,
    owner_alive,
)


def test_the_owner_is_that_very_process(tmp_path: Path) -> None:
    claim(tmp_path)
    assert owner_alive(tmp_path)
    pid, started = (tmp_path / OWNER_FILE).read_text().split()
    assert int(pid) == os.getpid()
    (tmp_path / OWNER_FILE).write_text(f"{pid} {int(started) + 1}\n")  # same PID, another process
    assert not owner_alive(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    claim(tmp_path, gone.pid)
    assert not alive(gone.pid) and not owner_alive(tmp_path)


def test_the_guard_stops_its_child_once_the_owner_is_gone_for_the_grace_time(tmp_path: Path) -> None:
    owner = subprocess.Popen(["sleep", "60"])
    claim(tmp_path, owner.pid)
    guard = _guard(tmp_path, 1.0)
    try:
        assert guard_pid(tmp_path) == guard.pid
        time.sleep(2.5)  # owner alive: the child is held well past the grace time
        assert guard.poll() is None
        owner.kill()
        owner.wait()
        assert guard.wait(10) == 0  # stopped about 1 s after the owner went
        assert guard_pid(tmp_path) is None
    finally:
        for proc in (owner, guard):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_restarting_savd_claims_every_held_speaker_before_its_slow_start(tmp_path: Path) -> None:
    """claim_held_over: the speakers a dead savd left (one per router, nested) become ours at once, so a
    holdover shorter than savd's start-up does not run out before adoption; a folder whose guard is gone
    is not claimed."""
    root = tmp_path / "speakers"
    held, dead = root / "ctl-fs" / "r1", root / "ctl-fs" / "r2"
    for d in (held, dead):
        d.mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    claim(held, gone.pid)
    (dead / GUARD_FILE).write_text(f"{gone.pid}\n")
    guard = _guard(held, 30.0)
    try:
        assert not owner_alive(held)
        assert claim_held_over(root) == [held]
        assert owner_alive(held) and not owner_alive(dead)
        assert claim_held_over(tmp_path / "absent") == []
    finally:
        guard.kill()
        guard.wait()


def test_savd_run_claims_before_importing_its_commands(tmp_path: Path) -> None:
    """`savd run --config C` claims the held speakers under C's data_dir (relative to C) first thing, before
    the commands' imports (seconds on a loaded machine); other commands and unreadable configs claim
    nothing and leave the problem to the full parse."""
    from appliance.cli import claim_early

    held = tmp_path / "var" / "speakers" / "ctl-fs"
    held.mkdir(parents=True)
    config = tmp_path / "savd.toml"
    config.write_text('[appliance]\nasn = 65000\ndata_dir = "var"\n')
    guard = _guard(held, 30.0)
    try:
        missing = str(tmp_path / "none")
        for argv in (["config", "check", "--config", str(config)], ["run", "--config", missing]):
            claim_early(argv)
            assert not owner_alive(held), argv
        config.with_name("bad.toml").write_text("[appliance\n")
        claim_early(["run", f"--config={config.with_name('bad.toml')}"])
        assert not owner_alive(held)
        claim_early(["-v", "run", "--config", str(config)])
        assert owner_alive(held)
    finally:
        guard.kill()
        guard.wait()


def _guard(workdir: Path, grace_s: float) -> subprocess.Popen[bytes]:
    """A holdover guard over `sleep 60` in `workdir`, once it has recorded itself there."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))
    guard = subprocess.Popen(guard_argv(workdir, grace_s, ["sleep", "60"]), env=env)
    deadline = time.monotonic() + 10
    while guard_pid(workdir) != guard.pid and time.monotonic() < deadline:
        time.sleep(0.1)
    return guard
