"""Node plumbing of the enforcer (issue 12 item 10): a pair subnet the node already uses is refused with
a message, FRR's neighbour is re-added within seconds after a bgpd restart and removed at stop."""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest

from appliance.enforcer import node
from appliance.enforcer.node import (
    NodeError,
    Sidecar,
    VethPair,
    address_conflicts,
    frr_has_neighbor,
    frr_interface_state,
    unconfigure_frr,
)
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


IFACE = ('{"savd-fs-frr": {"administrativeStatus": "up", "operationalStatus": "up", '
         '"ipAddresses": [{"address": "198.18.254.1/30", "secondary": false}]}}')


@pytest.mark.parametrize("stdout, code, want", [
    (IFACE, 0, "ok"),
    ("zebra is not running", 1, "zebra-down"),     # bgpd then refuses the session: NOTIFICATION 5/0
    ("{}", 0, "interface-unknown"),                # zebra answers {} for an interface it does not know
    (IFACE.replace("198.18.254.1/30", "198.18.254.5/30"), 0, "address-unknown"),
    ('{"savd-fs-frr": {"ipAddresses": []}}', 0, "address-unknown"),
    ("Exiting: failed to connect to any daemons.", 1, "unknown"),
    ("not json", 0, "unknown"),
])
def test_frr_interface_state_tells_why_bgpd_refuses_the_session(tmp_path: Path, stdout: str, code: int,
                                                                 want: str) -> None:
    vtysh = fake_vtysh(tmp_path, stdout, code)
    assert frr_interface_state(vtysh, "savd-fs-frr", "198.18.254.1/30") == want
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv == ["-c", "show interface savd-fs-frr json"]


def test_frr_interface_state_without_vtysh_is_unknown(tmp_path: Path) -> None:
    assert frr_interface_state([str(tmp_path / "no-vtysh")], "savd-fs-frr", "198.18.254.1/30") == "unknown"


def test_resignal_flaps_the_frr_end_and_re_adds_its_address(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], str | None]] = []

    def fake_ip(args: Sequence[str], step: str, netns: str | None = None) -> str:
        calls.append((list(args), netns))
        if args[0] == "addr" and args[1] == "del":
            raise NodeError("Cannot assign requested address", step=step)   # already gone: tolerated
        return ""

    monkeypatch.setattr(node, "_ip", fake_ip)
    Sidecar(PAIR, "enf1-r").resignal()
    assert calls == [(["link", "set", "savd-fs-frr", "down"], "enf1-r"),
                     (["link", "set", "savd-fs-frr", "up"], "enf1-r"),
                     (["addr", "del", "198.18.254.1/30", "dev", "savd-fs-frr"], "enf1-r"),
                     (["addr", "add", "198.18.254.1/30", "dev", "savd-fs-frr"], "enf1-r")]


def diagnosing_service(tmp_path: Path, diagnosis: str | Exception, after_s: float = 0.0
                       ) -> tuple[EnforcerService, list[str]]:
    calls: list[str] = []

    def diagnose() -> str:
        calls.append("diagnose")
        if isinstance(diagnosis, Exception):
            raise diagnosis
        return diagnosis

    svc = EnforcerService(EnforcerOptions(
        node="r1", asn=65000, frr_address="198.18.254.1", exa_address="198.18.254.2", workdir=tmp_path,
        diagnose=diagnose, resignal=lambda: calls.append("resignal"), diagnose_after_s=after_s,
        diagnose_every_s=30.0))
    return svc, calls


def test_zebra_down_is_logged_as_the_cause_and_reported(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    svc, calls = diagnosing_service(tmp_path, "zebra-down")
    with caplog.at_level(logging.INFO, logger="appliance.enforcer.service"):
        asyncio.run(svc._maybe_diagnose())
        asyncio.run(svc._maybe_diagnose())      # not again before diagnose_every_s
    assert calls == ["diagnose"]
    assert svc.session.to_dict()["diagnosis"] == "zebra-down"
    (err,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    text = err.getMessage()
    assert "event=enforcer-frr-zebra-down ifname=savd-fs-frr" in text
    assert "NOTIFICATION 5/0" in text and "restart FRR's zebra" in text


@pytest.mark.parametrize("diagnosis", ["interface-unknown", "address-unknown"])
def test_an_interface_zebra_missed_is_resignalled(tmp_path: Path, diagnosis: str) -> None:
    svc, calls = diagnosing_service(tmp_path, diagnosis)
    asyncio.run(svc._maybe_diagnose())
    assert calls == ["diagnose", "resignal"] and svc.session.diagnosis == diagnosis


def test_diagnosis_waits_for_the_session_to_stay_down_and_survives_failures(tmp_path: Path) -> None:
    svc, calls = diagnosing_service(tmp_path, "zebra-down", after_s=60.0)
    asyncio.run(svc._maybe_diagnose())
    assert calls == []                          # down for less than diagnose_after_s
    svc, calls = diagnosing_service(tmp_path, RuntimeError("vtysh hung"))
    asyncio.run(svc._maybe_diagnose())          # logged, never raised
    assert calls == ["diagnose"] and svc.session.diagnosis == ""
    svc, calls = diagnosing_service(tmp_path, "zebra-down")
    svc.session.went_up()
    asyncio.run(svc._maybe_diagnose())
    assert calls == []                          # established: nothing to diagnose
