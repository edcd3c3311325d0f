"""A rule withdrawn and restored within one ExaBGP send round reaches a real FRR 8.4.4 as announced.

savd pushes rule versions back to back; a rule one version withdraws and the next restores is ordinary
(seen in the sav-inter lab: one of b2's 22 rules never reached its enforcer). Stock ExaBGP 5.0.15 sends
such a round's withdraw after its re-announce when another announce with the rule's attributes opened
their bucket first, and then suppresses every identical re-announce: FRR keeps the rule withdrawn.
ExaBgpSpeaker starts ExaBGP through appliance/speakers/exabgp_queue.py, which sends only each NLRI's
latest change. The three commands go to ExaBGP at once, as the pusher's window sends a diff.

And drift repair through ExaBGP reaches the router: ExaBGP suppresses an announce identical to one it
sent, so the pusher's repair flushes ExaBGP's adj-rib-out to the peer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from appliance.flowspec import ActionKind, FlowAction, FlowMatch, FlowRule, render_exabgp
from appliance.speakers.exabgp import ExaBgpSpeaker, ExaNeighbor, SessionUp
from appliance.speakers.pusher import ExaBgpFlowAdapter, FlowPusher

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bench.flowspec_lab import FRR_ADDR, FRR_AS, SPEAKER_ADDR, SPEAKER_AS, FrrFlowLab

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DISCARD = "then { discard; }"
LIMIT = "then { rate-limit 12500; }"


def announce(source: str, then: str = DISCARD) -> str:
    return f"neighbor {FRR_ADDR} announce flow route {{ match {{ source {source}; }} {then} }}"


def withdraw(source: str) -> str:
    return f"neighbor {FRR_ADDR} withdraw flow route {{ match {{ source {source}; }} }}"


async def frr_holds(lab: FrrFlowLab, want: dict[str, str], timeout: float = 20.0) -> dict[str, str]:
    """FRR's IPv4 FlowSpec sources and their actions, once they equal `want` (else the last seen)."""
    deadline, seen = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        seen = {e["from"]: e.get("ecomlist", "") for e in await asyncio.to_thread(lab.flowspec, 4)}
        if seen == want:
            break
        await asyncio.sleep(0.2)
    return seen


@contextlib.asynccontextmanager
async def established(lab: FrrFlowLab) -> AsyncIterator[ExaBgpSpeaker]:
    """savd's ExaBGP speaker (started as ExaBgpSpeaker starts it) with its session to FRR up."""
    neighbor = ExaNeighbor(FRR_ADDR, SPEAKER_ADDR, SPEAKER_AS, FRR_AS, SPEAKER_ADDR, ("ipv4 flow",))
    sp = ExaBgpSpeaker(lab.dir / "exabgp", [neighbor], netns=lab.ns_speaker)
    await sp.start()
    try:
        async for ev in sp.events():
            if isinstance(ev, SessionUp):
                break
        yield sp
    finally:
        await sp.stop()


@pytest.fixture
def lab(require_root: None) -> Iterator[FrrFlowLab]:
    with FrrFlowLab() as lab:
        yield lab


def test_a_rule_withdrawn_and_restored_in_one_round_stays_at_the_router(lab: FrrFlowLab) -> None:
    async def scenario() -> None:
        async with established(lab) as sp:
            assert await sp.send(announce("198.18.1.0/24"))
            assert await frr_holds(lab, {"198.18.1.0/24": "FS:rate 0.000000"}) == {
                "198.18.1.0/24": "FS:rate 0.000000"}
            # restored with the same action; another announce with it opens the round's bucket first
            acks = await asyncio.gather(sp.send(announce("198.18.2.0/24")),
                                        sp.send(withdraw("198.18.1.0/24")),
                                        sp.send(announce("198.18.1.0/24")))
            assert acks == [True, True, True]
            want = {"198.18.1.0/24": "FS:rate 0.000000", "198.18.2.0/24": "FS:rate 0.000000"}
            assert await frr_holds(lab, want) == want
            # restored with another action, whose bucket another rule opened first
            acks = await asyncio.gather(sp.send(announce("198.18.3.0/24", LIMIT)),
                                        sp.send(withdraw("198.18.1.0/24")),
                                        sp.send(announce("198.18.1.0/24", LIMIT)))
            assert acks == [True, True, True]
            want = {**want, "198.18.1.0/24": "FS:rate 12500.000000", "198.18.3.0/24": "FS:rate 12500.000000"}
            assert await frr_holds(lab, want) == want
            # and withdrawn after a re-announce in one round: gone
            await asyncio.gather(sp.send(announce("198.18.2.0/24", LIMIT)),
                                 sp.send(withdraw("198.18.2.0/24")))
            del want["198.18.2.0/24"]
            assert await frr_holds(lab, want) == want

    asyncio.run(scenario())



def updates_received(lab: FrrFlowLab) -> int:
    doc = json.loads(lab.vtysh(f"show bgp neighbors {SPEAKER_ADDR} json"))
    return int(doc[SPEAKER_ADDR]["messageStats"]["updatesRecv"])


def test_drift_repair_reaches_the_router_although_exabgp_holds_the_rule(lab: FrrFlowLab) -> None:
    """Drift repair re-announces a rule the router lost; ExaBGP suppresses an announce identical to one
    it sent, so the pusher then flushes ExaBGP's adj-rib-out: FRR receives the rule again (counted in
    its UPDATEs received; without the flush the count does not move)."""
    x = FlowRule("r1", FlowMatch("198.18.1.0/24"), FlowAction(ActionKind.DISCARD), ())

    async def scenario() -> None:
        async with established(lab) as sp:
            pusher = FlowPusher(ExaBgpFlowAdapter(sp))
            await pusher.session_up(FRR_ADDR)
            await pusher.push(FRR_ADDR, (x,))
            assert await frr_holds(lab, {"198.18.1.0/24": "FS:rate 0.000000"}) == {
                "198.18.1.0/24": "FS:rate 0.000000"}
            await asyncio.sleep(1.0)
            before = await asyncio.to_thread(updates_received, lab)
            assert await sp.send(f"neighbor {FRR_ADDR} {render_exabgp.announce(x)}")
            await asyncio.sleep(2.0)
            assert await asyncio.to_thread(updates_received, lab) == before   # suppressed by ExaBGP
            await pusher.repair(FRR_ADDR, (x,), ())
            deadline = time.monotonic() + 10
            while await asyncio.to_thread(updates_received, lab) == before and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert await asyncio.to_thread(updates_received, lab) > before
            assert await frr_holds(lab, {"198.18.1.0/24": "FS:rate 0.000000"}) == {
                "198.18.1.0/24": "FS:rate 0.000000"}

    asyncio.run(scenario())
