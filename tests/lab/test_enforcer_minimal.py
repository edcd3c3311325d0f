"""The enforcer end to end on real FRR 8.4.4, ExaBGP 5.0.15 and nftables, with spoofed packets.

Topology (tests/support/testbed.py): h1 - r(FRR + savd-enforcer) - h2, pusher p (ExaBGP, eBGP).
Rules are pushed at p, accepted by FRR, re-advertised over iBGP to the enforcer's ExaBGP in a sidecar
namespace, and enforced in nftables in r. Packets are counted at the receiver h2 (nft counters) and in
the enforcer's counters. Interface group 7 = r-h1 (h1's side), 8 = r-h2.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.testbed import Testbed, wait_for

from appliance.config import EnforcerConfig
from appliance.enforcer.poller import fetch, samples_from

pytestmark = [pytest.mark.lab, pytest.mark.slow]

G7 = "scope { interface-set transitive:input:1:7; }"


@pytest.fixture(scope="module")
def tb(require_root: None) -> Iterator[Testbed]:
    bed = Testbed()
    try:
        bed.up()
        yield bed
    finally:
        bed.down()


def rules(tb: Testbed) -> dict[str, dict[str, Any]]:
    return {r["source"]: r for r in tb.enforcer_get("/counters")["rules"]}


def wait_rules(tb: Testbed, want: dict[str, str], timeout_s: float = 20) -> dict[str, dict[str, Any]]:
    """Wait until the enforcer reports exactly these sources in these states."""

    def probe() -> tuple[dict[str, dict[str, Any]]] | None:
        got = rules(tb)
        return (got,) if {s: r["state"] for s, r in got.items()} == want else None

    return wait_for(f"enforcer rules {want}", probe, timeout_s, 0.1)[0]


def delivered(tb: Testbed, source: str, count: int) -> int:
    before = tb.rx_counter(source)
    (tb.send_v6 if ":" in source else tb.send_v4)(source, count)
    time.sleep(0.3)
    return tb.rx_counter(source) - before


def test_blocklist_drops_spoofed_v4_v6_and_counts(tb: Testbed) -> None:
    sent = tb.push(
        [
            f"announce flow route {{ match {{ source 198.18.77.0/24; }} {G7} then {{ discard; }} }}",
            f"announce flow route {{ match {{ source-ipv6 2001:db8:77::/48/0; }} {G7} then {{ discard; }} }}",
        ]
    )
    assert sent == 2
    wait_rules(tb, {"198.18.77.0/24": "installed", "2001:db8:77::/48": "installed"})
    # legitimate first (IPv6 neighbour discovery), then spoofed
    assert delivered(tb, "198.18.101.10", 20) == 20
    assert delivered(tb, "2001:db8:101::10", 10) == 10
    assert delivered(tb, "198.18.77.5", 20) == 0
    assert delivered(tb, "2001:db8:77::5", 10) == 0

    def counted() -> dict[str, dict[str, Any]] | None:
        r = rules(tb)
        ok = r["198.18.77.0/24"]["dropped_packets"] >= 20 and r["2001:db8:77::/48"]["dropped_packets"] >= 10
        return r if ok else None

    got = wait_for("enforcer drop counters", counted, 10)
    assert got["198.18.77.0/24"]["dropped_packets"] == 20
    assert got["2001:db8:77::/48"]["dropped_packets"] == 10
    # the appliance-side poller reads the same counters through the node's namespace
    samples = samples_from("r", fetch(EnforcerConfig("r", netns=tb.ns("r"))))
    by_source = {x.source_prefix: x for x in samples}
    assert by_source["198.18.77.0/24"].packets == 20 and by_source["198.18.77.0/24"].spoofed
    assert by_source["198.18.77.0/24"].interface == "r-h1"
    listing = tb.nft_listing()
    assert listing is not None and any("r-h1" in str(item) for item in listing["nftables"])


def test_withdraw_restores_traffic_and_removes_the_table(tb: Testbed) -> None:
    tb.push(
        [
            "withdraw flow route { match { source 198.18.77.0/24; } }",
            "withdraw flow route { match { source-ipv6 2001:db8:77::/48/0; } }",
        ]
    )
    wait_rules(tb, {})
    wait_for("table removed", lambda: tb.nft_listing() is None, 10)
    assert delivered(tb, "198.18.77.6", 20) == 20
    assert delivered(tb, "2001:db8:77::6", 10) == 10


def test_allowlist_with_default_discard_on_one_interface(tb: Testbed) -> None:
    tb.push(
        [
            f"announce flow route {{ match {{ source 198.18.101.0/24; }} {G7} then {{ accept; }} }}",
            f"announce flow route {{ match {{ source 0.0.0.0/0; }} {G7} then {{ discard; }} }}",
            f"announce flow route {{ match {{ source-ipv6 2001:db8:101::/64/0; }} {G7} then {{ accept; }} }}",
            f"announce flow route {{ match {{ source-ipv6 ::/0/0; }} {G7} then {{ discard; }} }}",
        ]
    )
    wait_rules(
        tb,
        {
            "198.18.101.0/24": "installed",
            "0.0.0.0/0": "installed",
            "2001:db8:101::/64": "installed",
            "::/0": "installed",
        },
    )
    assert delivered(tb, "198.18.101.10", 20) == 20
    assert delivered(tb, "2001:db8:101::10", 10) == 10
    assert delivered(tb, "198.18.88.1", 20) == 0
    assert delivered(tb, "2001:db8:88::1", 10) == 0
    # neighbour discovery still works under the ::/0 discard: flush h1's cache and talk again
    tb.exec("h1", ["ip", "-6", "neigh", "flush", "dev", "h1-r"])
    assert delivered(tb, "2001:db8:101::10", 10) == 10
    got = rules(tb)
    assert got["198.18.101.0/24"]["packets"] >= 20 and got["198.18.101.0/24"]["dropped_packets"] == 0
    tb.push(
        [
            "withdraw flow route { match { source 198.18.101.0/24; } }",
            "withdraw flow route { match { source 0.0.0.0/0; } }",
            "withdraw flow route { match { source-ipv6 2001:db8:101::/64/0; } }",
            "withdraw flow route { match { source-ipv6 ::/0/0; } }",
        ]
    )
    wait_rules(tb, {})


def test_session_loss_fails_open_and_resyncs(tb: Testbed) -> None:
    tb.push([f"announce flow route {{ match {{ source 198.18.66.0/24; }} {G7} then {{ discard; }} }}"])
    wait_rules(tb, {"198.18.66.0/24": "installed"})
    tb.vtysh("configure terminal", "router bgp 65000", "neighbor 198.18.254.2 shutdown")
    wait_rules(tb, {})
    assert delivered(tb, "198.18.66.1", 10) == 10
    tb.vtysh("configure terminal", "router bgp 65000", "no neighbor 198.18.254.2 shutdown")
    wait_rules(tb, {"198.18.66.0/24": "installed"}, 60)
    assert delivered(tb, "198.18.66.1", 10) == 0
    tb.push(["withdraw flow route { match { source 198.18.66.0/24; } }"])
    wait_rules(tb, {})


def test_frr_losing_the_receiver_neighbour_is_repaired(tb: Testbed) -> None:
    """As after an FRR restart without the runtime-added neighbour: the enforcer re-adds it."""
    tb.push([f"announce flow route {{ match {{ source 198.18.67.0/24; }} {G7} then {{ discard; }} }}"])
    wait_rules(tb, {"198.18.67.0/24": "installed"})
    tb.vtysh("configure terminal", "router bgp 65000", "no neighbor 198.18.254.2")
    wait_rules(tb, {})
    wait_rules(tb, {"198.18.67.0/24": "installed"}, 60)
    assert "198.18.254.2" in tb.vtysh("show running-config", daemon="bgpd")
    tb.push(["withdraw flow route { match { source 198.18.67.0/24; } }"])
    wait_rules(tb, {})


def test_burst_of_1000_rules_keeps_zebra_and_unicast_alive(tb: Testbed) -> None:
    zebra = tb.frr_pid("zebra")
    assert zebra is not None
    assert tb.push(["announce route 198.18.150.0/24 next-hop self"]) == 1
    wait_for(
        "unicast route in r's kernel",
        lambda: "198.18.150.0/24" in tb.exec("r", ["ip", "route", "show", "198.18.150.0/24"]).stdout,
        20,
    )
    commands = [
        f"announce flow route {{ match {{ source 198.19.{i // 256}.{i % 256}/32; }} {G7} "
        "then { discard; } }"
        for i in range(1000)
    ]
    assert tb.push(commands) == 1000
    wait_for(
        "1000 routes installed",
        lambda: sum(1 for r in rules(tb).values() if r["state"] == "installed") == 1000 or None,
        60,
        0.5,
    )
    time.sleep(2)
    assert tb.frr_pid("zebra") == zebra, "zebra restarted or died"
    assert "198.18.150.0/24" in tb.exec("r", ["ip", "route", "show", "198.18.150.0/24"]).stdout
    # routing is alive, not just left behind in the kernel: a new unicast route still gets installed
    tb.push(["announce route 198.18.151.0/24 next-hop self"])
    wait_for(
        "new unicast route after the burst",
        lambda: "198.18.151.0/24" in tb.exec("r", ["ip", "route", "show", "198.18.151.0/24"]).stdout,
        20,
    )
    # the cause of the crash is kept away: bgpd handed nothing to zebra's PBR (no table chunk)
    assert tb.vtysh("show pbr iptable").strip() == ""
    assert tb.vtysh("show pbr ipset").strip() == ""
    assert delivered(tb, "198.19.1.7", 10) == 0
    assert delivered(tb, "198.18.101.10", 10) == 10
    tb.push([c.replace("announce", "withdraw").replace(f" {G7} then {{ discard; }}", "") for c in commands])
    wait_rules(tb, {}, 60)
    assert tb.frr_pid("zebra") == zebra
