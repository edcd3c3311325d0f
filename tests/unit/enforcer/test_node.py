"""Node plumbing of the enforcer (issue 12 item 10): a pair subnet the node already uses is refused with
a message, FRR's neighbour is re-added within seconds after a bgpd restart and removed at stop."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from appliance.enforcer.node import VethPair, address_conflicts, frr_has_neighbor, unconfigure_frr
from appliance.enforcer.service import EnforcerOptions, EnforcerService

PAIR = VethPair()   # 198.18.254.1/30 and .2/30, the defaults
ADDRS = [
    {"ifname": "lo", "addr_info": [{"local": "127.0.0.1", "prefixlen": 8},
                                   {"local": "198.18.254.1", "prefixlen": 32}]},
    {"ifname": "eth1", "addr_info": [{"local": "198.18.10.1", "prefixlen": 30}]},
    {"ifname": "savd-fs-frr", "addr_info": [{"local": "198.18.254.1", "prefixlen": 30}]},
]
ROUTES = [
    {"dst": "default", "gateway": "198.18.10.2", "dev": "eth1"},
    {"dst": "198.18.254.0/24", "gateway": "198.18.10.2", "dev": "eth1"},  # covers the pair: no conflict
    {"dst": "198.18.0.0/16", "type": "blackhole"},  # an aggregate, as gobgp's r4 holds: no conflict
    {"dst": "198.18.254.2", "gateway": "198.18.10.2", "dev": "eth1"},  # a remote loopback inside
    {"dst": "198.18.254.0/30", "dev": "savd-fs-frr"},
    {"dst": "2001:db8::/32", "dev": "eth1"},
]


def test_a_user_loopback_or_route_in_the_pair_subnet_is_a_conflict() -> None:
    """Addresses and more specific routes inside the pair's /30 steal its traffic; covering routes do not
    (the connected /30 is the longer match)."""
    assert address_conflicts(PAIR, ADDRS, ROUTES) == [
        "address 198.18.254.1/32 on lo",
        "route 198.18.254.2 via 198.18.10.2",
    ]
    assert address_conflicts(VethPair(frr_address="192.0.2.1/30", exa_address="192.0.2.2/30"), ADDRS,
                             ROUTES) == []


def fake_vtysh(tmp_path: Path, stdout: str, code: int = 0) -> list[str]:
    script = tmp_path / "vtysh"
    log = tmp_path / "argv"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {log}\nprintf '%s' '{stdout}'\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return [str(script)]


def test_frr_has_neighbor_reads_the_json_view(tmp_path: Path) -> None:
    assert frr_has_neighbor(fake_vtysh(tmp_path, '{"198.18.254.2": {"bgpState": "Active"}}'), "198.18.254.2")
    assert frr_has_neighbor(fake_vtysh(tmp_path, '{"bgpNoSuchNeighbor": true}'), "198.18.254.2") is False
    assert frr_has_neighbor(fake_vtysh(tmp_path, "bgpd is not running", 1), "198.18.254.2") is None


def test_unconfigure_removes_only_the_receiver_neighbour(tmp_path: Path) -> None:
    unconfigure_frr(fake_vtysh(tmp_path, ""), 65000, "198.18.254.2")
    argv = (tmp_path / "argv").read_text().splitlines()
    assert [a for a in argv if a != "-c"] == ["configure terminal", "router bgp 65000",
                                              "no neighbor 198.18.254.2", "end"]


def test_a_neighbour_missing_after_a_bgpd_restart_is_readded_within_seconds(tmp_path: Path) -> None:
    has = {"value": True}
    calls: list[float] = []

    def reconfigure() -> None:
        calls.append(0.0)
        has["value"] = True

    svc = EnforcerService(EnforcerOptions(
        node="r1", asn=65000, frr_address="198.18.254.1", exa_address="198.18.254.2", workdir=tmp_path,
        reconfigure=reconfigure, reconfigure_after_s=30.0,
        frr_has_neighbor=lambda: has["value"], frr_watch_s=0.05))

    async def run() -> None:
        task = asyncio.create_task(svc._watch_frr())
        await asyncio.sleep(0.2)
        assert calls == []           # present: nothing to do
        has["value"] = False         # bgpd restarted from a config without the neighbour
        await asyncio.sleep(0.3)
        task.cancel()

    asyncio.run(run())
    assert len(calls) == 1 and has["value"] is True
