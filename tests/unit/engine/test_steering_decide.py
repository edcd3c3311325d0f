"""Steering decisions: selection by load, capacity exhaustion and the fallback, scale events,
determinism (engine/steering.py)."""

from __future__ import annotations

import random

from appliance.engine.steering import NO_INSPECTOR, SCALE_IN, SCALE_OUT, SteeringPolicy, choose, decide
from appliance.model import Inspector, Steered, SteeringFallback, Suspect

A = Inspector("a", "192.0.2.10", 100.0, 50.0)
B = Inspector("b", "192.0.2.11", 10.0, 2.0)
C = Inspector("c", "192.0.2.12", 10.0, 2.0)
V6 = Inspector("v6", "2001:db8:ff::10", 100.0, 0.0)
POLICY = SteeringPolicy()


def types(events: object) -> list[str]:
    return [e.type for e in events]  # type: ignore[attr-defined]


def test_the_lowest_load_ratio_wins_ties_by_name_and_family_matters() -> None:
    assert choose([A, C, B], 4) == B          # 0.2 < 0.5; b before c at 0.2
    assert choose([A, B, V6], 6) == V6
    assert choose([A, B], 6) is None
    d = decide([A, B, V6], [Suspect("198.18.1.7/32", "dpi"), Suspect("2001:db8:9::/48")], ["r1"], POLICY)
    assert d.steered == (Steered("r1", "198.18.1.7/32", "dpi", "b", "192.0.2.11"),
                         Steered("r1", "2001:db8:9::/48", "", "v6", "2001:db8:ff::10"))


def test_an_inspector_at_capacity_is_not_chosen_and_none_left_is_the_fallback_with_an_alarm() -> None:
    full = [Inspector("a", "192.0.2.10", 10.0, 10.0), Inspector("b", "192.0.2.11", 10.0, 12.0)]
    suspect = Suspect("198.18.1.0/24", "flagged", "r2")
    d = decide(full, [suspect], ["r1", "r2"], POLICY)
    assert d.steered == (Steered("r2", "198.18.1.0/24", "flagged", fallback=SteeringFallback.ACCEPT),)
    alarm = [e for e in d.events if e.type == NO_INSPECTOR]
    assert len(alarm) == 1 and alarm[0].alarm
    assert alarm[0].fields["prefix"] == "198.18.1.0/24" and alarm[0].fields["router"] == "r2"
    drop = decide([], [suspect], ["r2"], SteeringPolicy(fallback=SteeringFallback.DROP))
    assert drop.steered[0].fallback is SteeringFallback.DROP
    assert types(drop.events) == [NO_INSPECTOR]


def test_scale_out_and_scale_in_follow_the_mean_load_ratio() -> None:
    hot = [Inspector("a", "192.0.2.10", 10.0, 9.0), Inspector("b", "192.0.2.11", 10.0, 7.0)]
    assert types(decide(hot, [], [], POLICY).events) == [SCALE_OUT]        # mean 0.8
    cold = [Inspector("a", "192.0.2.10", 10.0, 1.0), Inspector("b", "192.0.2.11", 10.0, 2.0)]
    assert types(decide(cold, [], [], POLICY).events) == [SCALE_IN]        # mean 0.15
    assert types(decide(cold[:1], [], [], POLICY).events) == []            # one instance stays
    assert types(decide([A, B], [], [], POLICY).events) == []              # mean 0.35
    assert types(decide(cold, [], [], SteeringPolicy(scale_in_at=0.1)).events) == []


def test_all_routers_suspects_and_a_routers_own_one() -> None:
    d = decide([B], [Suspect("198.18.1.0/24", "all"), Suspect("198.18.1.0/24", "own", "r2")],
               ["r2", "r1"], POLICY)
    assert [(s.router, s.reason) for s in d.steered] == [("r1", "all"), ("r2", "own")]


def test_deterministic_whatever_the_input_order() -> None:
    inspectors = [A, B, C, V6]
    suspects = [Suspect(f"198.18.{i}.0/24", f"s{i}", "" if i % 2 else "r1") for i in range(8)]
    first = decide(inspectors, suspects, ["r1", "r2"], POLICY)
    for seed in range(5):
        rng = random.Random(seed)
        rng.shuffle(inspectors)
        rng.shuffle(suspects)
        assert decide(inspectors, suspects, ["r2", "r1"], POLICY) == first
