"""FlowSpec rules compiled from a SavRuleSet reach a real FRR 8.4.4 bgpd through ExaBGP 5.0.15 and
through GoBGP 3.10; withdraws remove them; after the speaker loses its state (process killed or
restarted) the pusher's re-sync restores them. FRR's view is read from
`vtysh -d bgpd -c 'show bgp ipvX flowspec detail json'` (concatenated JSON, bench/flowspec_lab.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from appliance.flowspec import ActionKind, FlowAction, FlowMatch, FlowRule, compile_ruleset
from appliance.model import Action, InterfaceRules, ListKind, Mode, SavRuleSet
from appliance.speakers.exabgp import ExaBgpSpeaker, ExaNeighbor, SessionUp
from appliance.speakers.gobgp import GoBgpNeighbor, GoBgpSpeaker
from appliance.speakers.pusher import ExaBgpFlowAdapter, FlowPusher, PushError

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench.flowspec_lab import (
    FRR_ADDR,
    FRR_AS,
    SPEAKER_ADDR,
    SPEAKER_AS,
    FrrFlowLab,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

INTERFACE_SET = "UNK:7, 2"
FRR_ACTION = {
    ActionKind.ACCEPT: lambda r: "",
    ActionKind.DISCARD: lambda r: "FS:rate 0.000000",
    ActionKind.RATE_LIMIT: lambda r: f"FS:rate {r.action.rate_bps}.000000",
    ActionKind.REDIRECT: lambda r: f"FS:redirect VRF RT:{r.action.redirect}",
    ActionKind.SAMPLE: lambda r: "FS:action eval stops",   # FRR 8.4.4's rendering of traffic-action
}

RULESET = SavRuleSet.of([
    InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24", "198.18.2.0/24", "2001:db8:1::/48")),
    InterfaceRules("r1", "eth2", ListKind.BLOCK, ("198.18.1.0/24", "198.18.16.0/20"), Action(Mode.MONITOR)),
    InterfaceRules("r1", "eth3", ListKind.BLOCK, ("198.18.0.0/16",), Action(Mode.RATE_LIMIT, 12500.0)),
    InterfaceRules("r1", "eth4", ListKind.BLOCK, ("2001:db8::/32",),
                   Action(Mode.REDIRECT, redirect="65001:100")),
])
SMALLER = SavRuleSet.of([InterfaceRules("r1", "eth2", ListKind.BLOCK, ("198.18.16.0/20",))])
# the most interface-set communities the compiler puts on one rule (max_groups_per_rule)
WIDE = FlowRule("r1", FlowMatch("198.18.99.0/24"), FlowAction(ActionKind.DISCARD), tuple(range(1, 257)))


def frr_key(rule: FlowRule) -> tuple[str, str, str, int]:
    """How FRR shows a rule: source ("/off 0" for IPv6), packet length, action, interface-set count."""
    src = rule.match.source + ("/off 0" if rule.match.family == 6 else "")
    plen = "" if rule.match.packet_length_min is None else f">= {rule.match.packet_length_min} "
    return (src, plen, FRR_ACTION[rule.action.kind](rule), len(rule.groups))


def frr_seen(lab: FrrFlowLab) -> Counter[tuple[str, str, str, int]]:
    out: Counter[tuple[str, str, str, int]] = Counter()
    for afi in (4, 6):
        for entry in lab.flowspec(afi):
            ecom = entry.get("ecomlist", "")
            out[(entry["from"], entry.get("pktlen", ""), ecom.replace(INTERFACE_SET, "").strip(),
                 ecom.count(INTERFACE_SET))] += 1
    return out


async def wait_frr(lab: FrrFlowLab, rules: Iterable[FlowRule], what: str, timeout: float = 30.0) -> None:
    want = Counter(frr_key(r) for r in rules)
    deadline = time.monotonic() + timeout
    seen: Counter[tuple[str, str, str, int]] = Counter()
    while time.monotonic() < deadline:
        seen = await asyncio.to_thread(frr_seen, lab)
        if seen == want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"FRR never showed {what}: missing {want - seen}, unexpected {seen - want}")


def plan_rules(ruleset: SavRuleSet) -> tuple[FlowRule, ...]:
    plan = compile_ruleset(ruleset).get("r1")
    assert plan is not None and not plan.refused
    return plan.rules


@pytest.fixture
def lab(require_root: None) -> Iterable[FrrFlowLab]:
    with FrrFlowLab() as lab:
        yield lab


@contextlib.asynccontextmanager
async def exabgp(lab: FrrFlowLab) -> AsyncIterator[ExaBgpSpeaker]:
    families = ("ipv4 flow", "ipv6 flow")
    neighbor = ExaNeighbor(FRR_ADDR, SPEAKER_ADDR, SPEAKER_AS, FRR_AS, SPEAKER_ADDR, families)
    sp = ExaBgpSpeaker(lab.dir / "exabgp", [neighbor], netns=lab.ns_speaker)
    await sp.start()
    try:
        yield sp
    finally:
        await sp.stop()


async def follow(events: AsyncIterator[Any], pusher: FlowPusher, ups: list[str]) -> None:
    """Feed a speaker's events to the pusher (its re-sync on SessionUp), noting each SessionUp's neighbour."""
    async for ev in events:
        if isinstance(ev, SessionUp):
            ups.append(ev.neighbor)
        await pusher.on_event(ev)


def test_exabgp_push_withdraw_and_resync_after_speaker_restart(lab: FrrFlowLab) -> None:
    full, small = (*plan_rules(RULESET), WIDE), plan_rules(SMALLER)
    assert any(r.match.packet_length_min is not None for r in full)  # the per-interface conflict case

    async def scenario() -> None:
        async with exabgp(lab) as sp:
            pusher = FlowPusher(ExaBgpFlowAdapter(sp))
            ups: list[str] = []

            task = asyncio.create_task(follow(sp.events(), pusher, ups))
            try:
                await pusher.push(FRR_ADDR, full)
                await wait_frr(lab, full, "the full rule set via ExaBGP")
                await pusher.push(FRR_ADDR, small)
                await wait_frr(lab, small, "the smaller set after withdraws")
                await asyncio.to_thread(lab.reset_session)   # FRR drops the routes with the session
                await wait_frr(lab, small, "the rules after a BGP session reset")
                # ExaBGP dies and is restarted by its supervisor with an empty RIB: only the
                # pusher's re-sync on the new SessionUp can bring the rules back.
                seen = ups.count(FRR_ADDR)
                os.kill(sp.pid or 0, signal.SIGKILL)
                deadline = time.monotonic() + 30
                while (ups.count(FRR_ADDR) == seen or sp.restarts < 1) and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                assert ups.count(FRR_ADDR) > seen and sp.restarts >= 1
                await wait_frr(lab, small, "the rules re-synced after the ExaBGP restart")
                await pusher.push(FRR_ADDR, ())
                await wait_frr(lab, (), "an empty FlowSpec RIB after withdrawing everything")
                # ExaBGP refuses a command for a neighbour it does not have: a PushError, nothing held
                await pusher.session_up("198.19.254.9")
                with pytest.raises(PushError, match=r"198\.19\.254\.9"):
                    await pusher.push("198.19.254.9", small)
                assert pusher.held("198.19.254.9") == ()
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    asyncio.run(scenario())


def test_gobgp_push_withdraw_and_resync_after_gobgpd_restart(lab: FrrFlowLab) -> None:
    full, small = (*plan_rules(RULESET), WIDE), plan_rules(SMALLER)
    neighbor = GoBgpNeighbor(FRR_ADDR, FRR_AS, local_address=SPEAKER_ADDR)
    sp = GoBgpSpeaker(lab.dir / "gobgp", asn=SPEAKER_AS, router_id=SPEAKER_ADDR, neighbors=[neighbor],
                      netns=lab.ns_speaker)

    async def scenario() -> None:
        await sp.start()
        pusher = FlowPusher(sp)
        ups: list[str] = []

        task = asyncio.create_task(follow(sp.events(), pusher, ups))
        try:
            await pusher.push(FRR_ADDR, full)          # held back until the session is up, then re-synced
            await wait_frr(lab, full, "the full rule set via GoBGP")
            assert await sp.count_paths(1) + await sp.count_paths(2) == len(full)
            await pusher.push(FRR_ADDR, small)
            await wait_frr(lab, small, "the smaller set after DeletePath")
            await asyncio.to_thread(lab.reset_session)       # gobgpd keeps its RIB and re-advertises it
            await wait_frr(lab, small, "the rules after a BGP session reset")
            assert ups.count(FRR_ADDR) == 1                  # a flap is not a reason to re-sync GoBGP
            # gobgpd dies with its RIB; the supervisor restarts it and the pusher re-syncs on SessionUp
            os.kill(sp.pid or 0, signal.SIGKILL)
            deadline = time.monotonic() + 40
            while ups.count(FRR_ADDR) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert ups.count(FRR_ADDR) == 2 and sp.restarts == 1
            await wait_frr(lab, small, "the rules re-synced after the gobgpd restart")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sp.stop()

    asyncio.run(scenario())
