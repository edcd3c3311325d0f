"""Property: whatever sequence of deltas reached it, the incremental plan equals a fresh build of the same
routes (sets with their elements and owners, chain rules, counters, statuses), so the kernel after any
run of incremental transactions holds what a full reload would. Seeded, so a failure replays exactly."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from appliance.enforcer.nftplan import Plan, Planner, PlanOptions, build_plan
from appliance.enforcer.route import Route, decode_route

DISCARD = 0x8006000000000000
RATE = 0x80060000447A0000
GROUPS = {7: ("eth1",), 8: ("eth2", "eth3"), 9: ("eth1",)}   # group 99: unmapped


def group(gid: int) -> int:
    return (0x0702 << 48) | (1 << 16) | 0x4000 | gid


def random_route(rng: random.Random) -> Route:
    """Mostly /24-/28 sources under few /16s (so runs form, nest and split), a few actions, groups and
    extra components."""
    length = rng.choice((16, 20, 24, 24, 26, 28, 28, 28))
    base = rng.choice((10, 172, 198))
    addr = (base << 24) | (rng.randrange(4) << 16) | (rng.randrange(1 << 16) & ~((1 << (32 - length)) - 1)
                                                     & 0xFFFF)
    prefix = ".".join(str((addr >> s) & 255) for s in (24, 16, 8, 0)) + f"/{length}"
    nlri: dict[str, Any] = {"source-ipv4": [prefix]}
    if rng.random() < 0.1:
        nlri["destination-port"] = [rng.choice(("=53", "=443"))]
    communities = []
    action = rng.random()
    if action < 0.6:
        communities.append({"value": DISCARD})
    elif action < 0.65:
        communities.append({"value": RATE})
    gids = rng.choice(((), (7,), (7,), (8,), (7, 8), (9,), (99,)))
    communities += [{"value": group(g)} for g in gids]
    return decode_route("ipv4 flow", nlri, {"extended-community": communities})


def comparable(plan: Plan) -> tuple[Plan, list[Any]]:
    """Statuses are per route; their order is not part of the table."""
    return dataclasses.replace(plan, statuses=()), sorted(plan.statuses, key=lambda s: (s.rid, s.state))


OPTIONS = [PlanOptions(set_min=2, shard_size=3), PlanOptions(set_min=4, shard_size=8)]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("options", OPTIONS, ids=["tiny-shards", "small-shards"])
def test_any_delta_sequence_equals_a_fresh_build(seed: int, options: PlanOptions) -> None:
    rng = random.Random(seed)
    pool = [random_route(rng) for _ in range(160)]
    planner = Planner(GROUPS, options)
    current: dict[str, Route] = {}
    plan = planner.load([], {})
    for step in range(40):
        changed: dict[str, Route | None] = {}
        for _ in range(rng.choice((1, 1, 2, 5, 10, 25))):
            r = rng.choice(pool)
            if r.key in current and rng.random() < 0.5:
                changed[r.key] = None
            else:
                changed[r.key] = r
        for key, r in changed.items():
            if r is None:
                current.pop(key, None)
            else:
                current[key] = r
        hold = {k: "held" for k in rng.sample(sorted(current), min(len(current), rng.randrange(3)))}
        plan = planner.update(changed, hold)
        fresh = build_plan(list(current.values()), GROUPS, options, hold)
        assert comparable(plan) == comparable(fresh), f"seed {seed} step {step}"
    assert plan.sets, "the sequence never formed a set: the test would not exercise shards"


def test_withdrawing_everything_empties_the_plan() -> None:
    rng = random.Random(99)
    routes = [random_route(rng) for _ in range(100)]
    planner = Planner(GROUPS, PlanOptions(set_min=2, shard_size=3))
    planner.load(routes)
    plan = planner.update({r.key: None for r in routes})
    assert plan.empty and plan.sets == () and plan.counters == () and plan.chains == ()
