"""A catch-all discard's actual sources (issue 14): meters in the plan, their incremental life, parsing
`nft -j list` into the top sources, bounded, and the counters document carrying them."""

from __future__ import annotations

from typing import Any

from appliance.enforcer.nftplan import (
    Counters,
    PlanOptions,
    TopSource,
    build_plan,
    render_full,
    render_incremental,
    top_sources_from_listing,
    verify_listing,
)
from appliance.enforcer.poller import samples_from
from appliance.enforcer.route import Route, decode_route
from appliance.enforcer.service import snapshot
from appliance.enforcer.table import sorted_routes

DISCARD = {"extended-community": [{"value": 0x8006000000000000, "string": "rate-limit:0"}]}


def route(prefix: str, attrs: dict[str, Any] | None = None, gid: int | None = None) -> Route:
    family = 6 if ":" in prefix else 4
    attrs = {k: list(v) for k, v in (attrs or {}).items()}
    if gid is not None:
        attrs.setdefault("extended-community", []).append(
            {"value": (0x0702 << 48) | (1 << 16) | 0x4000 | gid, "string": f"interface-set:input:1:{gid}"})
    return decode_route(f"ipv{family} flow", {f"source-ipv{family}": [prefix]}, attrs)


def allowlist() -> list[Route]:
    return list(sorted_routes([route("198.18.0.0/24", gid=7), route("0.0.0.0/0", DISCARD, gid=7),
                               route("2001:db8:1::/48", gid=7), route("::/0", DISCARD, gid=7)]))


def test_catch_alls_get_a_bounded_meter_before_their_discard() -> None:
    plan = build_plan(allowlist(), {7: ["eth1"]})
    assert {(m.family, m.length, m.size, m.timeout_s) for m in plan.meters} == {(4, 24, 1024, 600),
                                                                                  (6, 48, 1024, 600)}
    rules = dict(plan.chains)["c_i0"]
    v4 = next(m for m in plan.meters if m.family == 4)
    v6 = next(m for m in plan.meters if m.family == 6)
    i = rules.index(f"ip saddr 0.0.0.0/0 update @{v4.name} {{ ip saddr & 255.255.255.0 }}")
    assert rules[i + 1].endswith("drop") and "0.0.0.0/0" in rules[i + 1]   # the meter never holds the drop
    assert f"ip6 saddr ::/0 update @{v6.name} {{ ip6 saddr & ffff:ffff:ffff:: }}" in rules
    text = render_full(plan)
    assert (f"set {v4.name} {{ type ipv4_addr; size 1024; flags dynamic,timeout; timeout 600s; counter; }}"
            in text)
    # a specific source needs no meter, nor does an accept; top_size 0 turns meters off
    assert build_plan([route("198.18.5.0/24", DISCARD)], {}).meters == ()
    assert build_plan(allowlist(), {7: ["eth1"]}, PlanOptions(top_size=0)).meters == ()
    assert build_plan(allowlist(), {7: ["eth1"]}, PlanOptions(top_v4_len=16)).meters[0].update().endswith(
        "255.255.0.0 }")


def test_meters_are_added_before_and_deleted_after_the_rules_that_use_them() -> None:
    accepts = [r for r in allowlist() if r.action.kind.name != "DISCARD"]
    old = build_plan(accepts, {7: ["eth1"]})
    new = build_plan(allowlist(), {7: ["eth1"]})
    text = render_incremental(old, new)
    names = [m.name for m in new.meters]
    assert all(text.index(f"add set inet savd_enforcer {n} ") < text.index(f"update @{n}") for n in names)
    assert "delete table" not in text
    back = render_incremental(new, old)
    assert all(back.index(f"delete set inet savd_enforcer {n}") > back.index("flush chain") for n in names)
    more = build_plan([*allowlist(), route("198.18.1.0/24", gid=7)], {7: ["eth1"]})
    assert "set t_" not in render_incremental(new, more)    # a kept meter keeps its elements


def meter_listing(name: str, elems: list[tuple[str, int]]) -> dict[str, Any]:
    return {"set": {"name": name, "elem": [{"elem": {"val": v, "expires": 590,
                                                     "counter": {"packets": n, "bytes": 84 * n}}}
                                           for v, n in elems]}}


def test_listing_gives_the_top_sources_of_each_catch_all_bounded_to_n() -> None:
    plan = build_plan(allowlist(), {7: ["eth1"]})
    v4 = next(m for m in plan.meters if m.family == 4)
    v6 = next(m for m in plan.meters if m.family == 6)
    many = [(f"198.18.{i}.0", i + 1) for i in range(15)]
    data = {"nftables": [meter_listing(v4.name, many), meter_listing(v6.name, [("2001:db8:7::", 3)]),
                         {"set": {"name": "unrelated", "elem": [{"elem": {"val": "198.18.1.0",
                                                                          "counter": {"packets": 9}}}]}}]}
    top = top_sources_from_listing(plan, data)
    assert set(top) == {v4.owner, v6.owner}
    assert len(top[v4.owner]) == 10 and top[v4.owner][0] == TopSource("198.18.14.0/24", 15, 15 * 84)
    assert [t.packets for t in top[v4.owner]] == list(range(15, 5, -1))
    assert top[v6.owner] == (TopSource("2001:db8:7::/48", 3, 252),)
    assert len(top_sources_from_listing(plan, data, top=3)[v4.owner]) == 3
    assert "meter" not in " ".join(verify_listing(plan, {"nftables": [*data["nftables"]]}))
    assert f"meter {v4.name}: missing" in verify_listing(plan, {"nftables": []})


def test_counters_document_names_top_sources_per_rule_interface_and_sample() -> None:
    plan = build_plan(allowlist(), {7: ["eth1"]})
    v4 = next(m for m in plan.meters if m.family == 4)
    tops = (TopSource("198.18.7.0/24", 15, 1260), TopSource("198.18.9.0/24", 3, 252))
    doc = snapshot("r1", plan, {v4.owner: Counters(18, 1512, 18, 1512)}, generation=1, sessions=[],
                   problems=[], now=0.0, top={v4.owner: tops})
    rule = next(r for r in doc["rules"] if r["source"] == "0.0.0.0/0")
    want = [{"source": "198.18.7.0/24", "packets": 15, "bytes": 1260},
            {"source": "198.18.9.0/24", "packets": 3, "bytes": 252}]
    assert rule["packets"] == 18 and rule["top_sources"] == want
    assert rule["per_interface"]["eth1"]["top_sources"] == want
    accept = next(r for r in doc["rules"] if r["source"] == "198.18.0.0/24")
    assert accept["top_sources"] == [] and accept["per_interface"]["eth1"]["top_sources"] == []
    sample = next(s for s in doc["samples"] if s["source_prefix"] == "0.0.0.0/0")
    assert sample["top_sources"] == want
    parsed = next(s for s in samples_from("r1", doc) if s.source_prefix == "0.0.0.0/0")
    assert parsed.top_sources == (("198.18.7.0/24", 15, 1260), ("198.18.9.0/24", 3, 252))
    assert samples_from("r1", {"samples": [{**sample, "top_sources": None}]})[0].top_sources == ()
