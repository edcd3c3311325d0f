"""The enforcer names why FRR refuses its session, on real FRR 8.4.4: with zebra not running bgpd has no
interfaces and answers every incoming session with NOTIFICATION 5/0; before, the enforcer only logged the
notification and savd only saw rules missing.

Testbed (tests/support/testbed.py) without the enforcer; zebra in r is killed by PID, then the enforcer
starts and its /counters document must report the session down with diagnosis "zebra-down".
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.testbed import Testbed, wait_for

from appliance.config import EnforcerConfig
from appliance.enforcer.poller import EnforcerPoller
from appliance.monitor import Monitor

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture
def tb(require_root: None) -> Iterator[Testbed]:
    bed = Testbed(enforcer=False)
    try:
        bed.up()
        yield bed
    finally:
        bed.down()


def kill_zebra(tb: Testbed) -> None:
    """zebra's PID among r's processes (/proc/PID/comm), killed by that PID."""
    (pid,) = [p for p in tb.pids("r") if Path(f"/proc/{p}/comm").read_text().strip() == "zebra"]
    os.kill(pid, signal.SIGKILL)
    wait_for("zebra gone", lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 10)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def test_zebra_not_running_is_diagnosed_and_alarmed(tb: Testbed) -> None:
    kill_zebra(tb)
    started = time.time()
    tb.start_enforcer(wait_session=False)

    def diagnosed() -> dict[str, Any] | None:
        session = tb.enforcer_get("/counters").get("session") or {}
        return session if session.get("diagnosis") == "zebra-down" else None

    session = wait_for("session diagnosis zebra-down", diagnosed, 30, 0.5)
    assert session["established"] is False and session["peer"] == "198.18.254.1"
    assert started - 1 <= session["down_since"] <= time.time()
    assert tb.enforcer_status()["session"]["diagnosis"] == "zebra-down"
    log = (tb.dir / "enforcer.log").read_text()
    assert "event=enforcer-frr-zebra-down ifname=savd-fs-frr" in log
    assert "(5,0)" in session["last_reason"], log[-3000:]    # bgpd's refusal, as in CI

    # savd's side, through the node's namespace as configured: the alarm once it is down 15 s
    ctx = Ctx()
    poller = EnforcerPoller([EnforcerConfig("r", netns=tb.ns("r"))])

    def alarmed() -> list[Any] | None:
        asyncio.run(poller.poll_once(ctx))
        return ctx.monitor.alarms.active("enforcer.session-down") or None

    (alarm,) = wait_for("enforcer.session-down alarm", alarmed, 20, 1.0)
    assert alarm.id == "enforcer.session-down/r"
    (event,) = [r.event for r in ctx.monitor.bus.recent() if r.event.type == "enforcer.session-down"]
    assert "zebra is not running in r: bgpd refuses the enforcer's session (NOTIFICATION 5/0)" \
        in event.message


class Ctx:
    def __init__(self) -> None:
        self.monitor = Monitor()

    def report_counters(self, samples: Any, router: str = "") -> None:
        pass
