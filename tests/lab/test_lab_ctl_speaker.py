"""The controller node of sav-basic works as the appliance's BGP speaker site: a real GoBGP on `ctl`
peers with every router's loopback (iBGP, unicast + IPv4/IPv6 FlowSpec), and a FlowSpec rule announced
there reaches the routers' FlowSpec RIB while their unicast routing keeps working."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from appliance.lab import Lab

pytestmark = pytest.mark.lab
LOOPBACKS = ["198.18.255.1", "198.18.255.2", "198.18.255.3", "198.18.255.4"]
GOBGP_API = "127.0.0.1:50051"  # inside ctl's own namespace


def _gobgpd_config() -> str:
    lines = [
        "[global.config]",
        "  as = 65000",
        '  router-id = "198.18.20.10"',
        "  port = 179",
        '  local-address-list = ["198.18.20.10"]',
    ]
    for peer in LOOPBACKS:
        lines += [
            "[[neighbors]]",
            "  [neighbors.config]",
            f'    neighbor-address = "{peer}"',
            "    peer-as = 65000",
            "  [neighbors.transport.config]",
            '    local-address = "198.18.20.10"',
        ]
        for family in ("ipv4-unicast", "ipv4-flowspec", "ipv6-flowspec"):
            lines += [
                "  [[neighbors.afi-safis]]",
                "    [neighbors.afi-safis.config]",
                f'      afi-safi-name = "{family}"',
            ]
    return "\n".join(lines) + "\n"


def _gobgp(lab: Lab, *args: str) -> str:
    host, port = GOBGP_API.split(":")
    return lab.exec("ctl", ["gobgp", "-u", host, "-p", port, *args], check=True).stdout


def test_gobgp_on_ctl_peers_with_every_router_and_pushes_flowspec(sav_basic: Lab, tmp_path: Path) -> None:
    if shutil.which("gobgpd") is None:
        pytest.fail("gobgpd is not installed (scripts/setup installs Debian's gobgpd)")
    conf = tmp_path / "gobgpd.toml"
    conf.write_text(_gobgpd_config())
    proc = sav_basic.spawn(
        "ctl",
        ["gobgpd", "-f", str(conf), "-t", "toml", "--api-hosts", GOBGP_API, "-p", "--pprof-disable"],
        log=tmp_path / "gobgpd.log",
    )
    try:
        for router, loopback in zip(["r1", "r2", "r3", "r4"], LOOPBACKS, strict=True):
            sav_basic.wait_json(
                router,
                "show bgp neighbors 198.18.20.10 json",
                {"198.18.20.10": {"bgpState": "Established"}},
                timeout_s=60,
            )
            nbr = sav_basic.vtysh_json(router, "show bgp neighbors 198.18.20.10 json")["198.18.20.10"]
            families = nbr["neighborCapabilities"]["multiprotocolExtensions"]
            assert {"ipv4Unicast", "ipv4Flowspec", "ipv6Flowspec"} <= set(families), families
            assert nbr["localRouterId"] == loopback
        _gobgp(
            sav_basic,
            "global",
            "rib",
            "-a",
            "ipv4-flowspec",
            "add",
            "match",
            "source",
            "198.18.2.0/24",
            "then",
            "discard",
        )
        entry = sav_basic.wait_json("r1", "show bgp ipv4 flowspec json", {"routes": "*"}, timeout_s=30)
        assert "198.18.2.0/24" in json.dumps(entry)
        # r4 learned AS 65100's routes over eBGP and still sends them to ctl (addpath-tx-all-paths); FRR
        # sends an iBGP peer its first updates up to ~1 s after the session is up (update-group coalescing)
        deadline = time.monotonic() + 30
        while "198.19.0.0/16" not in (rib := json.loads(_gobgp(sav_basic, "-j", "global", "rib", "-a",
                                                                "ipv4"))):
            assert time.monotonic() < deadline, f"r4's routes never reached ctl: {sorted(rib)}"
            time.sleep(0.5)
        ping = sav_basic.exec("h1", ["ping", "-c", "2", "-i", "0.2", "-W", "2", "198.19.1.10"])
        assert "2 received" in ping.stdout, ping.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=10)
