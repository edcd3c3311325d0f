"""An allowlist reaches nftables whole: never its catch-all discard without its accepts (issue 12 item 10).

FRR sends an allowlist's accepts and its catch-all discard in separate UPDATEs (different attributes);
installed on its own, the discard dropped every legitimate packet of the interface for 40 ms.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from appliance.enforcer.allowlist import HOLD_NO_ACCEPTS, HOLD_SETTLING, held_catch_alls, is_catch_all
from appliance.enforcer.nft import ApplyResult
from appliance.enforcer.nftplan import Counters, Plan, build_plan, render_full, render_incremental
from appliance.enforcer.service import EnforcerOptions, EnforcerService
from appliance.enforcer.table import RouteTable
from appliance.speakers.exabgp import UpdateReceived

PEER = "198.18.254.1"
GROUP7 = {"string": "interface-set:input:1:7", "value": 504966108218998791}
DISCARD = {"string": "rate-limit:0", "value": 9225060886715039744}
ALLOWED = ("198.18.1.0/24", "198.18.2.0/24", "198.18.3.0/24", "198.18.4.0/24")


def update(prefixes: tuple[str, ...], *communities: dict[str, Any]) -> UpdateReceived:
    nlris = [{"source-ipv4": [p], "string": f"flow source-ipv4 {p}"} for p in prefixes]
    return UpdateReceived(PEER, attribute={"extended-community": [GROUP7, *communities]},
                          announce={"ipv4 flow": {"no-nexthop": nlris}})


CATCH_ALL = update(("0.0.0.0/0",), DISCARD)
ACCEPTS = update(ALLOWED)


def table(*updates: UpdateReceived) -> RouteTable:
    t = RouteTable()
    for u in updates:
        t.apply_update(u.neighbor, u.attribute, u.announce, u.withdraw)
    return t


def drops(plan: Plan) -> list[str]:
    return [rule for _, rules in plan.chains for rule in rules if rule.endswith(" drop")]


def test_catch_all_is_the_zero_length_source_that_does_not_accept() -> None:
    routes = {r.source.prefix if r.source else "": r for r in table(CATCH_ALL, ACCEPTS).routes()}
    assert is_catch_all(routes["0.0.0.0/0"])
    assert not any(is_catch_all(routes[p]) for p in ALLOWED)


def test_a_lone_catch_all_is_held_and_a_new_one_waits_for_quiet() -> None:
    alone = table(CATCH_ALL).routes()
    whole = table(CATCH_ALL, ACCEPTS).routes()
    rid = next(r for r in whole if is_catch_all(r)).rid
    key = next(r for r in whole if is_catch_all(r)).key
    assert held_catch_alls(alone, installed=(), is_quiet=True) == {key: HOLD_NO_ACCEPTS}
    assert held_catch_alls(alone, installed=(rid,), is_quiet=True) == {key: HOLD_NO_ACCEPTS}  # accepts gone
    assert held_catch_alls(whole, installed=(), is_quiet=False) == {key: HOLD_SETTLING}
    assert held_catch_alls(whole, installed=(), is_quiet=True) == {}
    assert held_catch_alls(whole, installed=(rid,), is_quiet=False) == {}  # a changing allowlist keeps it


def test_the_batch_that_installs_the_discard_carries_the_accepts() -> None:
    """The `nft -f` text: nothing dropped while only the discard arrived; then one transaction with the
    accept set and the discard together."""
    first = table(CATCH_ALL).routes()
    plan1 = build_plan(first, {7: ("eth1",)}, hold=held_catch_alls(first, (), is_quiet=True))
    assert drops(plan1) == [] and "drop" not in render_full(plan1)
    assert [s.state for s in plan1.statuses] == ["held"]
    whole = table(CATCH_ALL, ACCEPTS).routes()
    plan2 = build_plan(whole, {7: ("eth1",)}, hold=held_catch_alls(whole, (), is_quiet=True))
    for text in (render_full(plan2), render_incremental(plan1, plan2)):
        lines = text.splitlines()
        accept_set = [i for i, line in enumerate(lines) if "ip saddr @s_" in line and line.endswith("accept")]
        drop = [i for i, line in enumerate(lines) if line.endswith(" drop")]
        assert len(accept_set) == 1 and len(drop) == 1 and accept_set[0] < drop[0]
        assert all(p in text for p in ALLOWED)


class RecordingNft:
    """Stands in for NftTable and keeps every plan it was asked to install."""

    def __init__(self) -> None:
        self.plans: list[Plan] = []
        self.applied: Plan | None = None

    def apply(self, plan: Plan) -> ApplyResult:
        self.plans.append(plan)
        self.applied = plan
        return ApplyResult("full", 0.0, 0)

    def delete(self) -> None:
        self.applied = None

    def counters(self) -> tuple[dict[str, Counters], list[str]]:
        return {}, []


def test_service_never_installs_the_discard_before_its_accepts(tmp_path: Path) -> None:
    svc = EnforcerService(EnforcerOptions(node="r1", asn=65000, frr_address=PEER, exa_address="198.18.254.2",
                                          workdir=tmp_path, groups={7: ("eth1",)}, settle_s=0.2))
    nft = RecordingNft()
    svc.nft = nft  # type: ignore[assignment]

    async def run() -> None:
        applier = asyncio.create_task(svc._applier())
        for event in (CATCH_ALL, ACCEPTS):   # the discard first, its accepts 40 ms later
            if svc.handle(event):
                svc._dirty.set()
            await asyncio.sleep(0.04)
        await asyncio.sleep(0.5)
        applier.cancel()

    asyncio.run(run())
    assert nft.plans, "nothing applied"
    for plan in nft.plans:
        installed = {s.source for s in plan.statuses if s.state == "installed"}
        if "0.0.0.0/0" in installed:
            assert set(ALLOWED) <= installed, "the discard went in without its accepts"
    final = nft.plans[-1]
    assert {s.source: s.state for s in final.statuses} == {**dict.fromkeys(ALLOWED, "installed"),
                                                           "0.0.0.0/0": "installed"}
    assert len(drops(final)) == 1
