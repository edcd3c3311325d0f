"""NftTable against the real nftables in a scratch namespace: atomic apply, incremental transactions,
monotonic counters across set rewrites, drift repair, table removal. Traffic: ping on lo."""

from __future__ import annotations

import subprocess

import pytest

from appliance.enforcer.allowlist import held_catch_alls
from appliance.enforcer.nft import NftTable
from appliance.enforcer.nftplan import Counters, Plan, PlanOptions, build_plan, counter_key, per_route
from appliance.enforcer.route import Route, decode_route
from appliance.enforcer.table import sorted_routes

pytestmark = pytest.mark.integration

GROUP_7 = {"value": (0x0702 << 48) | (1 << 16) | 0x4000 | 7}
DISCARD = {"extended-community": [{"value": 0x8006000000000000}, GROUP_7]}
ACCEPT = {"extended-community": [GROUP_7]}
OPTIONS = PlanOptions(table="savd_test")


@pytest.fixture
def ns(scratch_netns: str) -> str:
    return scratch_netns


def route(prefix: str, attrs: dict[str, object]) -> Route:
    return decode_route("ipv4 flow", {"source-ipv4": [prefix]}, attrs)


def plan_of(*routes: Route) -> Plan:
    return build_plan(sorted_routes(routes), {7: ["lo"]}, OPTIONS)


def ping(ns: str, count: int = 3) -> None:
    subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "ping",
            "-c",
            str(count),
            "-i",
            "0.01",
            "-W",
            "1",
            "-q",
            "127.0.0.1",
        ],
        capture_output=True,
        check=False,
        timeout=30,
    )


ALLOW = [route(p, ACCEPT) for p in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
LOOPBACK = counter_key(ALLOW[0].rid, "lo")  # counted per (route, interface)


def test_incremental_changes_keep_counts_monotonic(ns: str) -> None:
    table = NftTable(table="savd_test", netns=ns)
    first = plan_of(*ALLOW)
    assert table.apply(first).mode == "full"
    ping(ns)
    counts, problems = table.counters()
    assert problems == [] and counts[LOOPBACK].packets == 6  # 3 requests + 3 replies on lo
    # an unrelated route: the allowlist set is untouched, its element counter survives in the kernel
    second = plan_of(*ALLOW, route("198.51.100.0/24", DISCARD))
    assert table.apply(second).mode == "incremental" and second.set_names() == first.set_names()
    ping(ns)
    assert table.counters()[0][LOOPBACK].packets == 12
    # the set itself changes (a member leaves, another joins): changed in place by one netlink batch, the
    # loopback element and its kernel counter stay, the new element gets its own counter
    joining = route("198.18.0.0/15", ACCEPT)
    third = plan_of(*[r for r in ALLOW if r.source and r.source.prefix != "10.0.0.0/8"], joining,
                    route("198.51.100.0/24", DISCARD))
    assert table.apply(third).mode == "elements" and third.set_names() == first.set_names()
    assert third.sets[0].elements != first.sets[0].elements
    counts, problems = table.counters()
    assert problems == [] and counts[LOOPBACK].packets == 12 and counts[LOOPBACK].dropped_packets == 0
    assert counts[counter_key(joining.rid, "lo")] == Counters()
    ping(ns)
    assert table.counters()[0][LOOPBACK].packets == 18


def test_a_refused_element_batch_leaves_nothing_and_nft_takes_over(ns: str) -> None:
    """The kernel lost an element behind the enforcer's back: the netlink batch that deletes it is refused
    whole (the element it also adds is not there), and the change still lands through nft."""
    from appliance.enforcer.nftnl import ElementChange, NetlinkError, apply_elements

    table = NftTable(table="savd_test", netns=ns)
    first = plan_of(*ALLOW)
    table.apply(first)
    allow_set = first.sets[0].name
    subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "element", "inet", "savd_test", allow_set,
                    "{ 10.0.0.0/8 }"], check=True)
    with pytest.raises(NetlinkError, match="ENOENT"):
        apply_elements("savd_test", [ElementChange(allow_set, ["10.0.0.0/8"], ["198.18.0.0/15"])], ns)
    listed = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "set", "inet", "savd_test", allow_set],
                            capture_output=True, text=True, check=True).stdout
    assert "198.18.0.0/15" not in listed and "127.0.0.0/8" in listed
    second = plan_of(*[r for r in ALLOW if r.source and r.source.prefix != "10.0.0.0/8"],
                     route("198.18.0.0/15", ACCEPT))
    assert table.apply(second).mode == "full"   # nft's incremental delete fails the same way
    assert table.counters()[1] == []


def test_drift_is_repaired_and_empty_plan_removes_the_table(ns: str) -> None:
    table = NftTable(table="savd_test", netns=ns)
    table.apply(plan_of(*ALLOW, route("198.51.100.0/24", DISCARD)))
    subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "flush", "chain", "inet", "savd_test", "c_i0"], check=True
    )
    _, problems = table.reconcile()
    assert problems and problems[0].startswith("chain c_i0: 0 rules")
    assert table.counters()[1] == []
    table.apply(plan_of())
    assert table.listing() is None


def test_discard_counts_drops(ns: str) -> None:
    table = NftTable(table="savd_test", netns=ns)
    blocker = route("127.0.0.0/8", DISCARD)
    table.apply(plan_of(blocker))
    ping(ns, 2)
    counts = per_route(table.counters()[0])
    assert counts[blocker.rid].packets == 2 and counts[blocker.rid].dropped_packets == 2  # no replies


def test_golden_text_is_accepted_by_nft(ns: str) -> None:
    from pathlib import Path

    golden = Path(__file__).parents[2] / "unit" / "enforcer" / "corpus" / "frr-8.4.4-via-exabgp-5.0.15.nft"
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"],
        input=golden.read_text(),
        text=True,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    listed = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", "chain", "inet", "savd_enforcer", "c_i0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "limit rate over 125000 bytes/second" in listed and "ip dscp set af11" in listed


def test_an_allowlist_arriving_discard_first_never_drops_its_own_sources(ns: str) -> None:
    """Issue 12 item 10: the catch-all alone is held (pings pass), then the accepts and the discard go in
    with one `nft -f` transaction (pings still pass, accepted by the allowlist, nothing dropped)."""
    table = NftTable(table="savd_test", netns=ns)
    catch_all = route("0.0.0.0/0", DISCARD)
    alone = sorted_routes([catch_all])
    first = build_plan(alone, {7: ["lo"]}, OPTIONS, held_catch_alls(alone, (), is_quiet=True))
    table.apply(first)
    assert table.listing() is None  # nothing to install: the discard is not installed on its own
    ping(ns)
    whole = sorted_routes([catch_all, *ALLOW])
    second = build_plan(whole, {7: ["lo"]}, OPTIONS, held_catch_alls(whole, (), is_quiet=True))
    assert table.apply(second).mode == "full"
    ping(ns)
    counts, problems = table.counters()
    assert problems == [] and counts[LOOPBACK].packets == 6
    assert per_route(counts).get(catch_all.rid, Counters()).dropped_packets == 0


def test_delta_sequences_leave_the_kernel_as_a_full_reload_would(ns: str) -> None:
    """Random deltas applied incrementally, then the same routes loaded whole into a second table:
    `nft -j list table` of both agree (sets with their elements, rules), counters aside."""
    import json
    import random

    from appliance.enforcer.nftplan import Planner

    rng = random.Random(7)
    pool = [route(f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(16) * 16}/28",
                  rng.choice((DISCARD, DISCARD, ACCEPT))) for _ in range(300)]
    options = PlanOptions(table="savd_test", shard_size=8)
    planner = Planner({7: ["lo"]}, options)
    planner.load([])
    table = NftTable(table="savd_test", netns=ns)
    current: dict[str, Route] = {}
    modes = []
    for _ in range(15):
        changed: dict[str, Route | None] = {}
        for r in rng.sample(pool, rng.choice((1, 10, 40))):
            changed[r.key] = None if r.key in current else r
            if r.key in current:
                del current[r.key]
            else:
                current[r.key] = r
        modes.append(table.apply(planner.update(changed)).mode)
    assert modes.count("incremental") + modes.count("elements") >= 13 and "elements" in modes
    fresh = NftTable(table="savd_fresh", netns=ns)
    fresh.apply(build_plan(list(current.values()), {7: ["lo"]}, PlanOptions(table="savd_fresh",
                                                                             shard_size=8)))

    def content(t: NftTable) -> str:
        listing = t.listing()
        assert listing is not None
        items = []
        for item in listing["nftables"]:
            for kind in ("set", "rule", "chain", "counter"):
                if kind in item:
                    obj = {k: v for k, v in item[kind].items() if k not in ("handle", "table")}
                    if kind == "set":
                        obj["elem"] = sorted(json.dumps(e.get("elem", {}).get("val", e), sort_keys=True)
                                             for e in obj.get("elem", []))
                    if kind == "counter":
                        obj = {"name": obj["name"]}
                    items.append(json.dumps([kind, obj], sort_keys=True))
        return "\n".join(sorted(items))

    assert content(table) == content(fresh)
