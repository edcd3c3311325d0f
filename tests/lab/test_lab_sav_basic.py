"""sav-basic comes up with real FRR: OSPFv2/v3 and BGP converge, hosts reach each other, routing is
asymmetric for subnet 1, and no node has a route beyond the lab's prefixes."""

from __future__ import annotations

import ipaddress
import json
import re

import pytest

from appliance.lab import Lab
from appliance.lab.reach import check_reachability

pytestmark = pytest.mark.lab

LOOPBACK = {"r1": "198.18.255.1", "r2": "198.18.255.2", "r3": "198.18.255.3", "r4": "198.18.255.4"}
OSPF_NEIGHBOURS = {"r1": {"r3"}, "r2": {"r3"}, "r3": {"r1", "r2", "r4"}, "r4": {"r3"}}
HOSTS_V4 = {"h1": "198.18.1.10", "h2": "198.18.3.10", "ctl": "198.18.20.10", "inet": "198.19.1.10"}
HOSTS_V6 = {
    "h1": "2001:db8:0:1::10",
    "h2": "2001:db8:0:3::10",
    "ctl": "2001:db8:0:20::10",
    "inet": "2001:db8:100:1::10",
}
LAB_NETS = [
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("2001:db8::/32"),
    ipaddress.ip_network("fe80::/64"),
]


@pytest.mark.parametrize("router", sorted(OSPF_NEIGHBOURS))
def test_ospf_v2_and_v3_adjacencies_full(sav_basic: Lab, router: str) -> None:
    v2 = sav_basic.vtysh_json(router, "show ip ospf neighbor json")["neighbors"]
    full_v2 = {rid for rid, entries in v2.items() if entries[0]["nbrState"].startswith("Full")}
    v3 = sav_basic.vtysh_json(router, "show ipv6 ospf6 neighbor json")["neighbors"]
    full_v3 = {n["neighborId"] for n in v3 if n["state"] == "Full"}
    expected = {LOOPBACK[n] for n in OSPF_NEIGHBOURS[router]}
    assert full_v2 == expected
    assert full_v3 == expected


def test_ebgp_border_established_and_routes_exchanged(sav_basic: Lab) -> None:
    r4 = sav_basic.vtysh_json("r4", "show bgp neighbors json")
    assert r4["198.18.30.2"]["bgpState"] == "Established"
    assert r4["2001:db8:0:30::2"]["bgpState"] == "Established"
    ext_v4 = sav_basic.vtysh_json("ext", "show ip route 198.18.0.0/16 json")
    assert ext_v4["198.18.0.0/16"][0]["protocol"] == "bgp"
    ext_v6 = sav_basic.vtysh_json("ext", "show ipv6 route 2001:db8::/48 json")
    assert ext_v6["2001:db8::/48"][0]["protocol"] == "bgp"
    # AS 65100's space reaches the inside via OSPF (r4 redistributes BGP)
    r1 = sav_basic.vtysh_json("r1", "show ip route 198.19.0.0/16 json")
    assert r1["198.19.0.0/16"][0]["protocol"] == "ospf"


@pytest.mark.parametrize("router", sorted(LOOPBACK))
def test_routers_have_ibgp_sessions_toward_ctl_with_flowspec(sav_basic: Lab, router: str) -> None:
    """The controller sessions are configured (Active until a speaker runs on ctl), with the flowspec
    AFs applied after start by the exec line."""
    nbrs = sav_basic.vtysh_json(router, "show bgp neighbors json")
    assert nbrs["198.18.20.10"]["remoteAs"] == 65000
    assert nbrs["2001:db8:0:20::10"]["remoteAs"] == 65000
    running = sav_basic.vtysh(router, "show running-config bgpd")
    assert re.search(r"address-family ipv4 flowspec\n\s+neighbor 198\.18\.20\.10 activate", running)
    assert "address-family ipv6 flowspec" in running


def test_border_next_hops_valid_despite_flowspec(sav_basic: Lab) -> None:
    """FRR 8.4's flowspec start-up bug would leave them invalid."""
    text = sav_basic.vtysh("r4", "show bgp nexthop")
    assert re.search(r"198\.18\.30\.2 valid", text), text
    assert re.search(r"2001:db8:0:30::2 valid", text), text


def _received(out: str) -> int:
    match = re.search(r"(\d+) (?:packets )?received", out)
    return int(match.group(1)) if match else 0


def _selected_protocol(lab: Lab, router: str, prefix: str) -> str:
    entries = lab.vtysh_json(router, f"show ip route {prefix} json")[prefix]
    return str(next(e["protocol"] for e in entries if e.get("selected")))


def test_subnet1_routing_is_asymmetric(sav_basic: Lab) -> None:
    """Traffic from P2 (198.18.2.0/24) leaves h1 via r1, which knows P2 only through OSPF from r2."""
    route = sav_basic.exec(
        "h1", ["ip", "-j", "route", "get", "198.18.3.10", "from", "198.18.2.10"], check=True
    )
    assert json.loads(route.stdout)[0]["dev"] == "eth1"  # the r1 link
    assert _selected_protocol(sav_basic, "r1", "198.18.2.0/24") == "ospf"
    assert _selected_protocol(sav_basic, "r1", "198.18.1.0/24") == "connected"
    assert _selected_protocol(sav_basic, "r2", "198.18.1.0/24") == "ospf"
    assert _selected_protocol(sav_basic, "r2", "198.18.2.0/24") == "connected"
    proc = sav_basic.exec(
        "h1", ["ping", "-c", "2", "-i", "0.2", "-W", "2", "-I", "198.18.2.10", "198.18.3.10"]
    )
    assert _received(proc.stdout) == 2, proc.stdout


def test_no_node_routes_beyond_lab_prefixes(sav_basic: Lab) -> None:
    for node in (n.name for n in sav_basic.topology.nodes):
        for family in ("-4", "-6"):
            routes = json.loads(
                sav_basic.exec(node, ["ip", family, "-j", "route", "show"], check=True).stdout
            )
            for route in routes:
                dst = route["dst"]
                assert dst != "default", f"{node}: default route {route}"
                net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/{32 if family == '-4' else 128}")
                assert any(
                    net.version == lab.version and net.subnet_of(lab)
                    for lab in LAB_NETS
                    if lab.version == net.version
                ), f"{node}: route beyond the lab: {route}"


def test_status_reports_daemons_and_neighbours(sav_basic: Lab) -> None:
    status = sav_basic.status()
    assert status["phase"] == "up"
    assert set(status["nodes"]) == {"r1", "r2", "r3", "r4", "ext", "h1", "h2", "ctl", "inet"}
    r3 = status["nodes"]["r3"]
    assert r3["present"] and r3["role"] == "frr"
    assert set(r3["daemons"]) == {"zebra", "staticd", "bgpd", "ospfd", "ospf6d", "watchfrr"}
    assert all(d["alive"] for d in r3["daemons"].values())
    assert sorted(n["state"] for n in r3["ospf"]) == ["Full", "Full", "Full"]
    assert {n["neighbor"]: n["state"] for n in status["nodes"]["ext"]["bgp"]} == {
        "198.18.30.1": "Established",
        "2001:db8:0:30::1": "Established",
    }
    assert status["nodes"]["h1"]["role"] == "host" and status["nodes"]["h1"]["daemons"] == {}


def test_attach_finds_the_running_instance(sav_basic: Lab) -> None:
    other = Lab.attach(sav_basic.name, prefix=sav_basic.prefix)
    assert other.netns("r1") == sav_basic.netns("r1")
    assert other.daemon_pids("r1") == sav_basic.daemon_pids("r1")


def test_exec_maps_container_paths_and_vtysh(sav_basic: Lab) -> None:
    argv = sav_basic.rewrite("r1", ["vtysh", "-f", "/etc/frr/flowspec.conf"])
    at = argv.index("vtysh")  # after the wrapper giving vtysh the node's hostname
    assert argv[at : at + 3] == ["vtysh", "--vty_socket", f"/var/run/frr/{sav_basic.netns('r1')}"]
    # sav-basic runs on `savd lab init`'s output: its flowspec.conf is init's, in the instance folder
    assert sav_basic.kit_dir is not None and argv[-1] == str(sav_basic.kit_dir / "r1" / "flowspec.conf")
    out = sav_basic.exec("r2", ["vtysh", "-c", "show running-config"], check=True).stdout
    assert [line for line in out.splitlines() if line.startswith("hostname")] == ["hostname r2"]


def test_every_host_reaches_every_host_v4_and_v6(sav_basic: Lab) -> None:
    result = check_reachability(sav_basic)
    assert result.hosts == {n: {4: HOSTS_V4[n], 6: HOSTS_V6[n]} for n in HOSTS_V4}  # the README's plan
    assert len(result.received) == 24 and result.ok  # 4 hosts x 3 peers x 2 families
    assert result.matrix().count("2/2") == 24
