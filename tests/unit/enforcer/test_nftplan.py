"""Plan and render: interface chains, runs -> sharded sets, fail-open degradation, counters, drift."""

from __future__ import annotations

from typing import Any

from appliance.enforcer.nftplan import (
    PlanOptions,
    build_plan,
    counters_from_listing,
    per_route,
    render_full,
    render_incremental,
    verify_listing,
)
from appliance.enforcer.route import Route, decode_route
from appliance.enforcer.table import sorted_routes

DISCARD = {"extended-community": [{"value": 0x8006000000000000, "string": "rate-limit:0"}]}
RATE_1000 = {"extended-community": [{"value": 0x80060000447A0000, "string": "rate-limit:1000"}]}
REDIRECT = {"extended-community": [{"value": 0x8008FDE900000064, "string": "redirect:65001:100"}]}


def group(gid: int) -> dict[str, Any]:
    return {"value": (0x0702 << 48) | (1 << 16) | 0x4000 | gid, "string": f"interface-set:input:1:{gid}"}


def route(prefix: str, attrs: dict[str, Any] | None = None, gid: int | None = None, **extra: Any) -> Route:
    family = 6 if ":" in prefix else 4
    attrs = {k: list(v) for k, v in (attrs or {}).items()}
    if gid is not None:
        attrs.setdefault("extended-community", []).append(group(gid))
    return decode_route(f"ipv{family} flow", {f"source-ipv{family}": [prefix], **extra}, attrs)


def allowlist(n: int, gid: int = 7) -> list[Route]:
    accepts = [route(f"198.18.{i}.0/24", gid=gid) for i in range(n)]
    return [*accepts, route("0.0.0.0/0", DISCARD, gid=gid)]


def test_allowlist_becomes_set_then_default_drop_in_the_interface_chain() -> None:
    plan = build_plan(sorted_routes(allowlist(10)), {7: ["eth1"]})
    chains = dict(plan.chains)
    assert plan.dispatch == (("eth1", "c_i0"),) and "c_any" not in chains
    assert len(plan.sets) == 1 and len(plan.sets[0].elements) == 10 and not plan.sets[0].drops
    meter = plan.meters[0]
    assert chains["c_i0"] == (f"ip saddr @{plan.sets[0].name} accept",
                              f"ip saddr 0.0.0.0/0 update @{meter.name} {{ ip saddr & 255.255.255.0 }}",
                              f'ip saddr 0.0.0.0/0 counter name "{plan.counters[0]}" drop')
    text = render_full(plan)
    assert 'iifname vmap { "eth1" : goto c_i0 }' in text
    assert "hook prerouting priority -300; policy accept;" in text


def test_runs_are_sharded_by_a_stable_trie_and_sets_keep_their_names() -> None:
    routes = sorted_routes(route(f"198.18.{i // 256}.{i % 256}/32", DISCARD) for i in range(1000))
    plan = build_plan(routes, {}, PlanOptions(shard_size=300))
    assert len(plan.sets) == 4 and sum(len(s.elements) for s in plan.sets) == 1000
    assert all(len(s.elements) <= 300 for s in plan.sets)
    again = build_plan(routes, {}, PlanOptions(shard_size=300))
    assert plan.set_names() == again.set_names()
    # one more route: only the shard it lands in changes, in place (same name)
    more = build_plan(sorted_routes([*routes, route("198.18.200.1/32", DISCARD)]), {},
                      PlanOptions(shard_size=300))
    assert more.set_names() == plan.set_names()
    assert sum(1 for a, b in zip(plan.sets, more.sets, strict=True) if a != b) == 1


def test_crossing_a_multiple_of_the_shard_size_moves_one_shard_not_all() -> None:
    """The old `hash mod ceil(n / size)` rehashed every set when n crossed a multiple of the size."""
    routes = [route(f"198.18.{i // 256}.{i % 256}/32", DISCARD) for i in range(1200)]
    opts = PlanOptions(shard_size=100)
    before = build_plan(routes[:1024], {}, opts)
    after = build_plan(routes[:1025], {}, opts)
    assert len({s.name: s for s in before.sets}.items() ^ {s.name: s for s in after.sets}.items()) <= 3


def test_overlapping_prefixes_split_runs_to_keep_first_match_order() -> None:
    routes = sorted_routes([route("198.18.1.0/24", DISCARD), route("198.18.1.128/25", DISCARD),
                            *(route(f"198.18.{i}.0/24", DISCARD) for i in range(2, 8))])
    plan = build_plan(routes, {}, PlanOptions(set_min=2))
    # the /25 comes first (more specific) and is never in one interval set with its covering /24
    rules = dict(plan.chains)["c_any"]
    assert rules[0].startswith("ip saddr 198.18.1.128/25 counter") and rules[1].startswith("ip saddr @")
    assert len(plan.sets) == 1 and "198.18.1.0/24" in plan.sets[0].elements


def test_unscoped_rules_apply_on_every_interface_and_unmapped_groups_are_not_installed() -> None:
    routes = sorted_routes([route("198.18.50.0/24", DISCARD), route("198.18.60.0/24", DISCARD, gid=7),
                            route("198.18.70.0/24", DISCARD, gid=99)])
    plan = build_plan(routes, {7: ["eth1"]})
    chains = dict(plan.chains)
    assert any("198.18.50.0/24" in r for r in chains["c_i0"])
    assert any("198.18.50.0/24" in r for r in chains["c_any"])
    assert not any("198.18.60.0/24" in r for r in chains["c_any"])
    states = {s.source: s.state for s in plan.statuses}
    assert states == {"198.18.50.0/24": "installed", "198.18.60.0/24": "installed",
                      "198.18.70.0/24": "unmapped"}


def test_fail_open_degradations() -> None:
    routes = sorted_routes([
        route("198.18.1.0/24", DISCARD, **{"tcp-flags": ["=rst"]}),   # discard + unsupported -> skipped
        route("198.18.2.0/24", RATE_1000, **{"fragment": ["=is-fragment"]}),  # -> accept wider match
        route("198.18.3.0/24", REDIRECT),                                # redirect -> accept + count
    ])
    plan = build_plan(routes, {})
    states = {s.source: s.state for s in plan.statuses}
    text = render_full(plan)
    assert "198.18.1.0/24" not in text
    assert "ip saddr 198.18.2.0/24 counter" in text and "limit" not in text
    assert "ip saddr 198.18.3.0/24 counter" in text and " drop" not in text.split("chain pre")[0].split(
        "198.18.3.0/24")[1].split("\n")[0]
    assert sorted(states.values()) == ["degraded", "degraded", "skipped"]


def test_rate_limit_renders_drop_over_rate_then_accept_with_two_counters() -> None:
    plan = build_plan([route("198.18.3.0/24", RATE_1000)], {})
    rules = dict(plan.chains)["c_any"]
    assert rules[0].startswith("ip saddr 198.18.3.0/24 limit rate over 1000 bytes/second counter name")
    assert rules[0].endswith("drop") and rules[1].endswith("accept")


def test_ports_imply_port_protocols() -> None:
    plan = build_plan([route("198.18.3.0/24", DISCARD, **{"destination-port": ["=53"]})], {})
    assert dict(plan.chains)["c_any"][0].startswith("meta l4proto { 6, 17, 132 } th dport 53 ip saddr")


def test_empty_plan_deletes_the_table() -> None:
    plan = build_plan([], {})
    assert plan.empty and render_full(plan).strip().endswith("delete table inet savd_enforcer")


def test_incremental_keeps_unchanged_sets_and_removes_gone_objects() -> None:
    old = build_plan(sorted_routes(allowlist(10)), {7: ["eth1"]})
    new = build_plan(sorted_routes([*allowlist(10)[:-1], route("198.18.99.0/24", DISCARD, gid=7)]),
                     {7: ["eth1"]})
    text = render_incremental(old, new)
    assert "add set" not in text and "element" not in text       # the allowlist set is unchanged
    assert "flush chain inet savd_enforcer pre" not in text      # nor is the dispatch
    assert f"delete counter inet savd_enforcer {old.counters[0]}" in text
    assert f"add counter inet savd_enforcer {new.counters[0]}" in text


def listing(plan_sets: list[tuple[str, list[tuple[str, int]]]], counters: list[tuple[str, int]],
            rules: dict[str, int]) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for name, elems in plan_sets:
        elem = [{"elem": {"val": {"prefix": {"addr": p.split("/")[0], "len": int(p.split("/")[1])}},
                          "counter": {"packets": n, "bytes": 100 * n}}} for p, n in elems]
        items.append({"set": {"name": name, "elem": elem}})
    items += [{"counter": {"name": n, "packets": v, "bytes": 100 * v}} for n, v in counters]
    items += [{"rule": {"chain": c}} for c, k in rules.items() for _ in range(k)]
    return {"nftables": items}


def test_counters_attributed_to_routes_from_sets_and_named_counters() -> None:
    routes = sorted_routes(allowlist(4))
    plan = build_plan(routes, {7: ["eth1"]})
    spec = plan.sets[0]
    elems = [("198.18.0.0/24", 5), ("198.18.1.0/24", 0), ("198.18.2.0/24", 0), ("198.18.3.0/24", 1)]
    data = listing([(spec.name, elems)], [(plan.counters[0], 7)],
                   {"c_i0": 3, "pre": 2})
    data["nftables"].append({"set": {"name": plan.meters[0].name}})
    counters = per_route(counters_from_listing(plan, data))
    assert set(counters_from_listing(plan, data)) == {f"{rid}@eth1" for rid in counters}
    rid = {r.source.prefix: r.rid for r in routes if r.source}
    assert counters[rid["198.18.0.0/24"]].packets == 5 and counters[rid["198.18.0.0/24"]].dropped_packets == 0
    assert counters[rid["0.0.0.0/0"]].dropped_packets == 7 and counters[rid["0.0.0.0/0"]].bytes == 700
    assert verify_listing(plan, data) == []
    data["nftables"] = [i for i in data["nftables"] if "set" not in i]
    assert verify_listing(plan, data) == [f"set {spec.name}: None elements, want 4",
                                          f"meter {plan.meters[0].name}: missing"]
    assert verify_listing(plan, None) == ["table missing"]


def test_incremental_changes_elements_in_place_and_refills_only_changed_chains() -> None:
    old = build_plan(sorted_routes(allowlist(10)), {7: ["eth1"]})
    grown = [*allowlist(10)[:-1], route("198.18.50.0/24", gid=7), allowlist(10)[-1]]
    new = build_plan(sorted_routes([*grown[1:]]), {7: ["eth1"]})
    assert new.set_names() == old.set_names()
    text = render_incremental(old, new)
    name = old.sets[0].name
    assert f"delete element inet savd_enforcer {name} {{ 198.18.0.0/24 }}" in text
    assert f"add element inet savd_enforcer {name} {{ 198.18.50.0/24 }}" in text
    assert "flush chain" not in text and "add rule" not in text   # rules still name the same set
