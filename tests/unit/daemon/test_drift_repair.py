"""The drift repair shell (appliance.speakers.repair): a router's enforcer listing lacking a rule savd
intends raises the drift.rule alarm, the rule goes out again through the router's pusher (counted), and the
alarm clears once the router lists it; routers that cannot be judged yet are skipped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from appliance.config import parse_config
from appliance.context import DaemonContext
from appliance.flowspec.rules import ACCEPT, ActionKind, FlowAction, FlowMatch, FlowRule
from appliance.speakers.pusher import FlowPusher
from appliance.speakers.repair import DriftRepair, component

PEER = "198.18.255.1"
A = FlowRule("r1", FlowMatch("198.18.1.0/24"), ACCEPT, (7,))
B = FlowRule("r1", FlowMatch("0.0.0.0/0"), FlowAction(ActionKind.DISCARD), (7,))
EXTRA = FlowRule("r1", FlowMatch("198.18.9.0/24"), ACCEPT, (7,))


class Speaker:
    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[str, ...]]] = []

    async def announce(self, peer: str, rules: Sequence[FlowRule]) -> None:
        self.sent.append(("announce", tuple(r.match.source for r in rules)))

    async def withdraw(self, peer: str, rules: Sequence[FlowRule]) -> None:
        self.sent.append(("withdraw", tuple(r.match.source for r in rules)))


def entry(rule: FlowRule) -> dict[str, Any]:
    return {"source": rule.match.source, "groups": list(rule.groups), "state": "installed",
            "action": str(rule.action), "nlri": f"flow source-ipv4 {rule.match.source}"}


def make(tmp_path: Path) -> tuple[DaemonContext, DriftRepair, FlowPusher, Speaker]:
    config = parse_config(f"""
[appliance]
asn = 65000
router_id = "198.18.20.10"
data_dir = "{tmp_path}"
[[enforcer]]
router = "r1"
url = "http://127.0.0.1:9180"
""", tmp_path / "savd.toml")
    ctx = DaemonContext.standalone(config)
    speaker = Speaker()
    pusher = FlowPusher(speaker)
    speakers = SimpleNamespace(targets={"r1": [(pusher, PEER)]})
    repair = DriftRepair(speakers, 30.0, settle_s=0.0)  # type: ignore[arg-type]
    return ctx, repair, pusher, speaker


def listing(ctx: DaemonContext, *rules: FlowRule) -> None:
    ctx.report_rules("r1", [entry(r) for r in rules])
    time.sleep(0.001)  # each listing arrives at its own time


def test_a_lost_rule_is_alarmed_re_pushed_counted_and_cleared(tmp_path: Path) -> None:
    async def go() -> None:
        ctx, repair, pusher, speaker = make(tmp_path)
        await pusher.session_up(PEER)
        await pusher.push(PEER, (A, B))
        speaker.sent.clear()
        listing(ctx, A)
        assert await repair.check_once(ctx) == 1 and ctx.monitor.alarms.active("drift.rule") == []
        assert await repair.check_once(ctx) == 0   # no new listing: nothing judged twice
        listing(ctx, A, EXTRA)
        await repair.check_once(ctx)
        alarms = {a.fields["kind"]: a for a in ctx.monitor.alarms.active("drift.rule")}
        assert set(alarms) == {"missing"}  # the extra rule is seen once only: not trusted yet
        assert (alarms["missing"].fields["prefix"], alarms["missing"].fields["router"]) == ("0.0.0.0/0", "r1")
        assert speaker.sent == [("announce", ("0.0.0.0/0",))]
        listing(ctx, A, B, EXTRA)
        await repair.check_once(ctx)
        assert [a.fields["kind"] for a in ctx.monitor.alarms.active("drift.rule")] == ["extra"]
        assert speaker.sent[-1] == ("withdraw", ("198.18.9.0/24",))
        listing(ctx, A, B)
        await repair.check_once(ctx)
        assert ctx.monitor.alarms.active("drift.rule") == []
        assert repair.detected == {("r1", "missing"): 1, ("r1", "extra"): 1}
        assert repair.repairs == {("r1", "announce"): 1, ("r1", "withdraw"): 1}
        assert repair.repaired == {"r1": 2}
        assert pusher.held(PEER) == (A, B)  # the pusher's own record still matches
        await repair.start(ctx)
        await repair.stop()
        text = ctx.metrics.render().decode()
        assert 'savd_drift_detected_total{kind="missing",router="r1"} 1.0' in text
        assert 'savd_drift_repairs_total{op="announce",router="r1"} 1.0' in text
        assert 'savd_drift_repaired_total{router="r1"} 2.0' in text

    asyncio.run(go())


def test_routers_that_cannot_be_judged_are_skipped(tmp_path: Path) -> None:
    async def go() -> None:
        ctx, repair, pusher, speaker = make(tmp_path)
        await pusher.push(PEER, (A, B))  # session down: nothing pushed, the re-sync will do it
        for _ in range(3):
            listing(ctx, A)
            assert await repair.check_once(ctx) == 0
        await pusher.session_up(PEER)
        repair.settle_s = 60.0  # every listing now predates the last push by less than the settle time
        for _ in range(3):
            listing(ctx, A)
            assert await repair.check_once(ctx) == 0
        assert ctx.monitor.alarms.active() == [] and speaker.sent == [("announce", ("198.18.1.0/24",
                                                                                    "0.0.0.0/0"))]

    asyncio.run(go())


def test_component_only_when_enabled(tmp_path: Path) -> None:
    ctx, *_ = make(tmp_path)
    speakers = SimpleNamespace(targets={})
    assert component(ctx, speakers) is not None  # type: ignore[arg-type]
    assert component(ctx, None) is None
    off = DaemonContext.standalone(parse_config(f"""
[appliance]
asn = 65000
router_id = "198.18.20.10"
data_dir = "{tmp_path}"
[timers]
drift_check_s = 0
[[enforcer]]
router = "r1"
url = "http://127.0.0.1:9180"
""", tmp_path / "off.toml"))
    assert component(off, speakers) is None  # type: ignore[arg-type]
