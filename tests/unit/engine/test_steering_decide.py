"""Steering decisions: spreading by headroom (weighted rendezvous), stability when instances come and go,
capacity exhaustion and the fallback, scale events, determinism (engine/steering.py)."""

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


SUSPECTS = [f"198.18.{i // 256}.{i % 256}/32" for i in range(2000)]


def spread(inspectors: list[Inspector]) -> dict[str, str]:
    """suspect -> the name of the inspector it goes to (all of SUSPECTS)."""
    out = {}
    for p in SUSPECTS:
        chosen = choose(inspectors, p)
        assert chosen is not None
        out[p] = chosen.name
    return out


def test_the_family_matters_and_one_inspector_takes_all() -> None:
    assert choose([A, B, V6], "2001:db8:9::/48") == V6
    assert choose([A, B], "2001:db8:9::/48") is None
    assert set(spread([B]).values()) == {"b"}
    d = decide([B, V6], [Suspect("198.18.1.7/32", "dpi"), Suspect("2001:db8:9::/48")], ["r1"], POLICY)
    assert d.steered == (Steered("r1", "198.18.1.7/32", "dpi", "b", "192.0.2.11"),
                         Steered("r1", "2001:db8:9::/48", "", "v6", "2001:db8:ff::10"))


def test_suspects_are_spread_in_proportion_to_headroom() -> None:
    # headroom: a 50, b 8, c 8 (of 66): about 76 %, 12 %, 12 %
    counts = {n: list(spread([A, B, C]).values()).count(n) for n in "abc"}
    assert sum(counts.values()) == len(SUSPECTS)
    for name, share in (("a", 50 / 66), ("b", 8 / 66), ("c", 8 / 66)):
        assert abs(counts[name] / len(SUSPECTS) - share) < 0.04, counts
    idle = Inspector("a", "192.0.2.10", 100.0, 0.0)    # a reports less load: it takes more
    assert list(spread([idle, B, C]).values()).count("a") > counts["a"]


def test_instances_coming_and_going_move_only_their_own_suspects() -> None:
    before = spread([A, B])
    D = Inspector("d", "192.0.2.13", 50.0, 0.0)
    after = spread([A, B, D])
    moved = {p for p in SUSPECTS if before[p] != after[p]}
    assert moved and all(after[p] == "d" for p in moved)         # scale-out: only to the new one
    assert spread([A, B, D, C]) != after
    gone = spread([A, D])                                          # b removed: only b's suspects move
    assert all(gone[p] == after[p] for p in SUSPECTS if after[p] != "b")
    hotter = spread([Inspector("a", "192.0.2.10", 100.0, 80.0), B])   # a loses room: suspects go to b
    assert all(hotter[p] == "b" for p in SUSPECTS if before[p] == "b")
    assert list(hotter.values()).count("b") > list(before.values()).count("b")


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


def test_ipv6_redirects_go_by_a_stable_route_target_unless_configured_as_ip() -> None:
    from appliance.engine.steering import route_targets
    from appliance.model import RedirectForm

    v6b = Inspector("v6b", "2001:db8:ff::11", 100.0, 0.0)
    policy = SteeringPolicy(asn=65000)
    d = decide([B, V6], [Suspect("198.18.1.7/32"), Suspect("2001:db8:9::/48")], ["r1"], policy)
    v4, v6 = d.steered
    assert v4.target == "" and v4.address == "192.0.2.11"                    # IPv4: redirect-to-IP
    assert v6.target == route_targets(65000, [V6.address])[V6.address] and v6.address == V6.address
    asn, nn = v6.target.split(":")
    assert asn == "65000" and 1 <= int(nn) <= 65535
    both = route_targets(65000, [V6.address, v6b.address])
    assert both[V6.address] == v6.target and len(set(both.values())) == 2      # another one: no renumbering
    ip = decide([V6], [Suspect("2001:db8:9::/48")], ["r1"], SteeringPolicy(ipv6_redirect=RedirectForm.IP,
                                                                           asn=65000))
    assert ip.steered[0].target == "" and ip.steered[0].address == V6.address
    assert decide([V6], [Suspect("2001:db8:9::/48")], ["r1"], POLICY).steered[0].target == ""   # no AS
