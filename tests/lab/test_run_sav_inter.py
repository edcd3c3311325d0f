"""Inter-domain SAV through `savd run` on containerlab/sav-inter: savd (subprocess) learns the ASBRs' eBGP
paths over BMP (FRR `-M bmp`, pre-policy Adj-RIB-In), ROAs and ASPAs from a local StayRTR over RTR v2, the
neighbours' relationships from configs/demo-inter.toml, and pushes FlowSpec to b1..b3, where savd-enforcer
turns it into nftables. Verdicts come from real packets counted at the receivers (appliance.demo.send_flow),
legitimate ones on every path including c1's asymmetric, limited-propagation P1 (announced to b2 with
NO_EXPORT, routed by b2 via b1, sent by c1 through b2).

One lab and one appliance for the module (prefix `svit`), the phases in file order: RPKI data and engine
algorithm auto; RPKI data gone (auto: loose everywhere, fail open); EFP-uRPF B configured (SIGHUP) without
RPKI data; c1's session on b1 shut down and back while on EFP-uRPF B.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from appliance.demo import LABS, Appliance, Flow, inter_flows, send_flow, send_flows, wait_until
from appliance.lab import Lab
from appliance.lab.traffic import rx_counter

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(300)]

PROFILE = LABS["sav-inter"]
PREFIX = "svit"
C1_ON_B1 = "198.19.31.2"      # c1's address on its eBGP session with b1 (BMP names the peer by it)
ALL_PATHS = PROFILE.min_paths  # eBGP paths b1..b3 report over BMP when every session is up
OWN = (ipaddress.ip_network("198.18.0.0/16"), ipaddress.ip_network("2001:db8::/48"))
C1_PATHS_ON_B1 = 6             # P1, Q1 and c1's infrastructure prefix, IPv4 and IPv6


@pytest.fixture(scope="module")
def app(require_root: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    lab = Lab.load(PROFILE.topology, prefix=PREFIX)
    appliance = Appliance(lab, tmp_path_factory.mktemp("savd-inter"), profile=PROFILE)
    try:
        appliance.start_on_converged_lab(90)
        yield appliance
    finally:
        appliance.stop()
        lab.down()


def rules(app: Appliance, router: str = "") -> list[dict[str, Any]]:
    doc: list[dict[str, Any]] = app.get(f"/api/v1/rules?router={router}")["rules"]
    return doc


def rule(app: Appliance, router: str, interface: str) -> dict[str, Any]:
    return next(r for r in rules(app, router) if r["interface"] == interface)


def own(prefix: str) -> bool:
    """Inside AS 65000's space (its loopbacks, links and LANs, learned over BGP-LS)."""
    net = ipaddress.ip_network(prefix)
    return any(net.version == o.version and net.subnet_of(o) for o in OWN)  # type: ignore[arg-type]


def paths(app: Appliance) -> int:
    return int(app.get("/api/v1/topology")["paths"])


def check(app: Appliance, flows: tuple[Flow, ...]) -> None:
    wrong = [f"{f.label} from {f.source}: {got}/{f.count} delivered, expected {f.expected}"
             for f, got in zip(flows, send_flows(app.lab, flows), strict=True) if got != f.expected]
    assert not wrong, "\n".join(wrong)


def test_rules_come_from_bmp_paths(app: Appliance) -> None:
    assert paths(app) == ALL_PATHS
    b2 = rule(app, "b2", "eth2")  # c1's second homing: BAR-SAV allowlist, ROAs plus the paths c1 sent b2
    assert b2["kind"] == "allow"
    why = [w for ws in b2["provenance"].values() for w in ws]
    assert any("path" in w and "198.19.31.6" in w for w in why), why  # c1's peer address on b2, over BMP
    assert "198.19.16.0/24" in b2["prefixes"]  # P1: received with NO_EXPORT on b2, routed via b1


def test_verdicts_with_rpki_data(app: Appliance) -> None:
    flows = inter_flows(count=10)
    assert sum(f.spoofed and not f.passes for f in flows) >= 10
    # the reflection attack: the victim hprov gets nothing reflected by srv while it runs
    reflection = next(f for f in flows if f.label.startswith("reflection") and ":" not in f.source)
    check(app, flows)
    time.sleep(1.0)  # replies srv owed hprov's own (legitimate) flow above have arrived
    reflected = rx_counter(app.lab.netns("hprov"), "198.18.40.10")
    assert send_flow(app.lab, reflection) == 0
    time.sleep(0.5)
    assert rx_counter(app.lab.netns("hprov"), "198.18.40.10") == reflected


def test_without_rpki_data_every_interface_fails_open(app: Appliance) -> None:
    """StayRTR's file emptied: no VRP, no ASPA. Default policy: loose uRPF everywhere, no legitimate packet
    dropped, the spoofed ones pass (nothing proves them spoofed) but for sources inside AS 65000's own
    infrastructure, which its borders block whatever RPKI says."""
    before = app.get("/api/v1/rules")["version"]
    app.set_rpki(())

    def recomputed() -> bool:
        return app.get("/api/v1/rules")["version"] != before and all(
            r["kind"] == "block" and all(own(p) for p in r["prefixes"]) for r in rules(app))

    wait_until("rules recomputed without RPKI data", recomputed, 30, 0.5)
    wait_until("nftables in sync", app.rules_in_sync, 30, 0.5)
    assert all("fail-open" in str(r) or "loose" in r["algorithm"] for r in rules(app))
    check(app, inter_flows(count=10, rpki=False))


def test_efp_uRPF_b_without_rpki_drops_every_customer_spoof(app: Appliance) -> None:
    """[engine] algorithm = "efp-b" (reload by SIGHUP), still no RPKI data: RFC 8704 algorithm B on the
    customer interfaces from the BMP paths alone drops every customer-side spoof, and c1's P1 still passes
    b2, where c1 announces it with NO_EXPORT."""
    assert app.config is not None and app.savd is not None
    text = app.config.read_text()
    app.config.write_text(re.sub(r'(?m)^algorithm = "auto"', 'algorithm = "efp-b"', text))
    os.kill(app.savd.pid, signal.SIGHUP)
    wait_until("EFP-uRPF B rules", lambda: rule(app, "b3", "eth2")["algorithm"] == "efp-b", 30, 0.5)
    wait_until("rules active", app.rules_active, 30, 0.5)
    assert "198.19.16.0/24" in rule(app, "b2", "eth2")["prefixes"]
    check(app, inter_flows(count=10, rpki=False, algorithm="efp-b"))


def test_a_customer_session_shut_down_withdraws_its_paths_and_rules_follow(app: Appliance) -> None:
    """c1's eBGP session on b1 shut down: BMP Peer Down, its 6 paths leave the state and b1's EFP-uRPF B
    list on eth2 (made of them) goes within seconds; back after `no shutdown`."""
    b1 = rule(app, "b1", "eth2")
    assert any(C1_ON_B1 in w for ws in b1["provenance"].values() for w in ws), b1
    vtysh = app.lab.vtysh_argv("b1")

    def neighbor(cmd: str) -> None:
        app.lab.exec("b1", [*vtysh, "-c", "configure terminal", "-c", "router bgp 65000",
                            "-c", f"{cmd} {C1_ON_B1} shutdown"], check=True)

    t0 = time.monotonic()
    neighbor("neighbor")
    try:
        wait_until("c1's paths on b1 withdrawn", lambda: paths(app) == ALL_PATHS - C1_PATHS_ON_B1, 15, 0.2)
        wait_until("b1's rule on eth2 to follow", lambda: not rule(app, "b1", "eth2")["prefixes"], 15, 0.2)
        assert time.monotonic() - t0 < 15
        assert rule(app, "b2", "eth2")["prefixes"]  # c1's other homing keeps its list
    finally:
        neighbor("no neighbor")
    wait_until("c1's paths on b1 back", lambda: paths(app) == ALL_PATHS, 60, 0.5)
    wait_until("b1's list back", lambda: rule(app, "b1", "eth2")["prefixes"] == b1["prefixes"], 30, 0.5)
    wait_until("rules active", app.rules_active, 30, 0.5)
