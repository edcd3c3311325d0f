"""sav-basic: its routers' exporters (exec lines) -> ExaBGP on ctl -> topology == the real lab topology.

Own instance of the lab (lab_factory): the test takes links down. The appliance's BGP-LS speaker listens
on ctl 198.18.20.10:1179 (port 179 belongs to the FlowSpec/unicast sessions from the same loopbacks).
Truth comes from the kernel (`ip -j addr` in the router namespaces), not from the exporter or FRR.

sav-basic is a star around r3: taking r1-r3 down also cuts r1's own session to ctl, so only r3's
direction can be withdrawn at once; r1's side stays as r1 last reported it until its session returns
(or ExaBGP's hold timer expires), and both come back when the link is restored.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from support import waiting
from support.graphs import adjacencies, graph_mismatch, prefixes

from appliance.cli import main
from appliance.lab import Lab
from appliance.sources.bgpls.ingest import TopologyIngest
from appliance.speakers.exabgp import ExaBgpSpeaker, ExaNeighbor

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(170)]

SAV_BASIC = Path(__file__).resolve().parents[2] / "containerlab" / "sav-basic" / "sav-basic.clab.yml"
ROUTERS = ("r1", "r2", "r3", "r4")
LOOPBACKS = {f"198.18.255.{i}": f"r{i}" for i in range(1, 5)}


def kernel_truth(lab: Lab) -> tuple[set[tuple[str, str, str, str]], set[tuple[str, str]]]:
    """Router adjacencies (shared IPv4 subnet, both ends up) and every router's interface subnet
    (IPv4, and IPv6 global scope)."""
    addrs: dict[str, list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]] = {}
    for r in ROUTERS:
        out = subprocess.run(
            ["ip", "-n", lab.netns(r), "-j", "addr", "show"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        for link in json.loads(out):
            flags = link.get("flags", [])
            if "UP" not in flags or "NO-CARRIER" in flags:
                continue
            for a in link.get("addr_info", []):
                itf = ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}")
                if not itf.ip.is_loopback and not itf.ip.is_link_local:
                    addrs.setdefault(r, []).append(itf)
    return adjacencies(addrs), prefixes(addrs)


until = partial(waiting.until, timeout_s=45.0)  # this module's wait per step


def test_sav_basic_graph_equals_lab_and_follows_link_changes(
    lab_factory: Callable[..., Lab], capsys: pytest.CaptureFixture[str]
) -> None:
    lab = lab_factory(SAV_BASIC)

    async def scenario() -> None:
        speaker = ExaBgpSpeaker(
            lab.node_dir("ctl") / "savd-bgpls",
            [
                ExaNeighbor(
                    addr,
                    "198.18.20.10",
                    65000,
                    65000,
                    "198.18.20.10",
                    ("bgp-ls bgp-ls",),
                    passive=True,
                    name=name,
                )
                for addr, name in LOOPBACKS.items()
            ],
            netns=lab.netns("ctl"),
            listen=("198.18.20.10", 1179),
        )
        ingest = TopologyIngest()
        topo = ingest.topology

        async def consume() -> None:
            async for ev in speaker.events():
                ingest.handle(ev)

        def matches() -> Any:
            adj, expected = kernel_truth(lab)
            border = set(topo.border_links())
            links = {
                (lk.local, lk.remote, lk.local_address, lk.remote_address)
                for lk in topo.links()
                if lk not in border
            }
            intra = {
                (topo.router_name(p.node), p.prefix) for p in topo.ls_prefixes() if p.ospf_route_type == 1
            }
            return graph_mismatch(links, adj, intra, expected, [r.name for r in topo.routers()], ROUTERS)

        await speaker.start()
        consumer = asyncio.create_task(consume())
        try:
            await until(
                lambda: ingest.eor_seen == set(LOOPBACKS) or sorted(ingest.eor_seen),
                "End-of-RIB from the exporters of r1..r4",
            )
            await until(matches, "learned graph == sav-basic")
            assert topo.neighbours("r3") == ("r1", "r2", "r4")
            assert {(i.router, i.name, i.external) for i in topo.interfaces()} == {
                ("r1", "eth2", False),
                ("r2", "eth3", False),
                ("r3", "eth1", False),
                ("r3", "eth2", False),
                ("r3", "eth3", False),
                ("r4", "eth1", False),
                ("r4", "eth2", True),
            }
            # the AS border: r4's eBGP sessions (IPv4 and IPv6) to ext, exported as BGP-LS links (RFC 9086)
            await until(
                lambda: len(topo.border_links()) == 2 or topo.border_links(), "both eBGP border links"
            )
            assert {
                (lk.local, lk.remote, lk.local_address, lk.remote_address) for lk in topo.border_links()
            } == {
                ("r4", "198.19.255.1", "198.18.30.1", "198.18.30.2"),
                ("r4", "198.19.255.1", "2001:db8:0:30::1", "2001:db8:0:30::2"),
            }
            assert topo.external_peers() == (("198.19.255.1", 65100),)
            externals = {
                (topo.router_name(p.node), p.prefix) for p in topo.ls_prefixes() if p.ospf_route_type > 2
            }
            assert ("r4", "198.19.0.0/16") in externals  # r4 redistributes what AS 65100 announces
            assert topo.routers_serving("198.18.3.10/32") == ("r2",)
            assert set(topo.routers_serving("198.18.1.0/24")) == {"r1"}

            # a stub subnet goes away and comes back (r2 stays reachable)
            lab.exec("r2", ["ip", "link", "set", "eth2", "down"], check=True)
            await until(
                lambda: (
                    topo.routers_serving("198.18.3.10/32") == () or topo.routers_serving("198.18.3.10/32")
                ),
                "198.18.3.0/24 withdrawn",
            )
            await until(matches, "graph without h2's subnet")
            lab.exec("r2", ["ip", "link", "set", "eth2", "up"], check=True)
            await until(matches, "h2's subnet restored")

            # the r1-r3 link: r3's direction is withdrawn at once, both directions come back
            lab.exec("r1", ["ip", "link", "set", "eth2", "down"], check=True)
            await until(
                lambda: "r1" not in topo.neighbours("r3") or topo.neighbours("r3"), "r3->r1 withdrawn"
            )
            assert not any(lk.local == "r3" and lk.remote == "r1" for lk in topo.links())
            lab.exec("r1", ["ip", "link", "set", "eth2", "up"], check=True)
            await until(matches, "r1-r3 restored", timeout_s=60)
            assert topo.neighbours("r1") == ("r3",) and "r1" in topo.neighbours("r3")
            assert topo.neighbours("r4") == ("198.19.255.1", "r3")
            assert ingest.skipped == []
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            await speaker.stop()

    asyncio.run(scenario())

    # `savd topology show --config`: a one-shot collection from the configured speaker, same graph
    conf = lab.node_dir("ctl") / "savd.toml"
    peers = "".join(
        f'[[speaker.peers]]\naddress = "{a}"\nasn = 65000\nrouter = "{n}"\nfamilies = ["bgp-ls"]\n'
        f"passive = true\n"
        for a, n in LOOPBACKS.items()
    )
    conf.write_text(
        f'[appliance]\nasn = 65000\nrouter_id = "198.18.20.10"\ndata_dir = "data"\n'
        f'[[speaker]]\nname = "bgpls"\ntype = "exabgp"\nlisten = "198.18.20.10:1179"\n'
        f'netns = "{lab.netns("ctl")}"\n{peers}'
    )
    capsys.readouterr()
    assert main(["topology", "show", "--config", str(conf), "--timeout", "30", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in doc["routers"]] == list(ROUTERS)
    assert sum(1 for lk in doc["links"] if lk["border"]) == 2 and len(doc["links"]) == 8
    assert {r["name"]: r["role"] for r in doc["routers"]}["r4"] == "border"  # inferred from its eBGP links
