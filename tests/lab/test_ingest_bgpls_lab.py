"""Exporter -> ExaBGP -> topology over real BGP sessions between network namespaces (own 3-router FRR lab).

    r1 eth1 ---- broadcast 198.18.61.0/29 ---- eth1 r2 eth2 ---- p2p 198.18.62.0/30 ---- eth1 r3
    each router: lo 198.18.255.N/32; r3: stub acc 198.18.13.0/24 (passive) and external cu 198.18.14.0/24
    (redistributed with route tag 0xA0000001); ctl 198.18.41.N/24 to the appliance namespace (no OSPF).

The learned graph must equal the lab's real topology, computed independently from `ip -j addr` in the
namespaces; a link taken down is withdrawn and comes back; an ExaBGP crash re-synchronises the graph
without duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from support import waiting
from support.graphs import adjacencies, graph_mismatch, prefixes

from appliance.sources.bgpls.ingest import TopologyIngest
from appliance.speakers.exabgp import ExaBgpSpeaker, ExaNeighbor, SpeakerRestarted

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(170)]

ROUTERS = ("r1", "r2", "r3")
OSPF_CONF = {
    "r1": [
        "interface eth1",
        " ip ospf hello-interval 1",
        " ip ospf dead-interval 3",
        "router ospf",
        " ospf router-id 198.18.255.1",
        " network 198.18.61.0/29 area 0",
        " network 198.18.255.1/32 area 0",
    ],
    "r2": [
        "interface eth1",
        " ip ospf hello-interval 1",
        " ip ospf dead-interval 3",
        "interface eth2",
        " ip ospf network point-to-point",
        " ip ospf hello-interval 1",
        " ip ospf dead-interval 3",
        "router ospf",
        " ospf router-id 198.18.255.2",
        " network 198.18.61.0/29 area 0",
        " network 198.18.62.0/30 area 0",
        " network 198.18.255.2/32 area 0",
    ],
    "r3": [
        "ip prefix-list CU permit 198.18.14.0/24",
        "route-map TAG permit 10",
        " match ip address prefix-list CU",
        " set tag 2684354561",
        "interface eth1",
        " ip ospf network point-to-point",
        " ip ospf hello-interval 1",
        " ip ospf dead-interval 3",
        "router ospf",
        " ospf router-id 198.18.255.3",
        " passive-interface acc",
        " network 198.18.62.0/30 area 0",
        " network 198.18.13.0/24 area 0",
        " network 198.18.255.3/32 area 0",
        " redistribute connected route-map TAG",
    ],
}


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout


class Lab:
    def __init__(self) -> None:
        self.p = "ig" + secrets.token_hex(3)
        # FRR drops to user frr: its config and logs need a world-traversable folder (pytest's are 0700).
        self.tmp = Path(tempfile.mkdtemp(prefix=f"savd-{self.p}-"))
        self.tmp.chmod(0o755)
        self.ns = {r: f"{self.p}{r}" for r in (*ROUTERS, "ap")}
        self.exporters: list[subprocess.Popen[bytes]] = []

    def build(self) -> None:
        for ns in self.ns.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        self.veth("r1", "eth1", "198.18.61.1/29", "r2", "eth1", "198.18.61.2/29")
        self.veth("r2", "eth2", "198.18.62.1/30", "r3", "eth1", "198.18.62.2/30")
        for r, (mine, peer) in {"r3": ("acc", "accp")}.items():
            self.local_pair(r, mine, peer, "198.18.13.1/24")
        self.local_pair("r3", "cu", "cup", "198.18.14.1/24")
        ap = self.ns["ap"]
        sh("ip", "-n", ap, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", ap, "addr", "add", "198.18.41.254/24", "dev", "br0")
        sh("ip", "-n", ap, "link", "set", "br0", "up")
        for i, r in enumerate(ROUTERS, 1):
            a, b = f"{self.p}c{i}", f"{self.p}d{i}"
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "link", "set", a, "netns", self.ns[r])
            sh("ip", "link", "set", b, "netns", ap)
            sh("ip", "-n", self.ns[r], "link", "set", a, "name", "ctl")
            sh("ip", "-n", self.ns[r], "addr", "add", f"198.18.41.{i}/24", "dev", "ctl")
            sh("ip", "-n", self.ns[r], "link", "set", "ctl", "up")
            sh("ip", "-n", ap, "link", "set", b, "master", "br0")
            sh("ip", "-n", ap, "link", "set", b, "up")
            sh("ip", "-n", self.ns[r], "addr", "add", f"198.18.255.{i}/32", "dev", "lo")

    def veth(self, ra: str, ia: str, aa: str, rb: str, ib: str, ab: str) -> None:
        a, b = f"{self.p}{ra}{ia[-1]}", f"{self.p}{rb}{ib[-1]}x"
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        for r, dev, name, addr in ((ra, a, ia, aa), (rb, b, ib, ab)):
            sh("ip", "link", "set", dev, "netns", self.ns[r])
            sh("ip", "-n", self.ns[r], "link", "set", dev, "name", name)
            sh("ip", "-n", self.ns[r], "addr", "add", addr, "dev", name)
            sh("ip", "-n", self.ns[r], "link", "set", name, "up")

    def local_pair(self, r: str, mine: str, peer: str, addr: str) -> None:
        ns = self.ns[r]
        sh("ip", "-n", ns, "link", "add", mine, "type", "veth", "peer", "name", peer)
        sh("ip", "-n", ns, "addr", "add", addr, "dev", mine)
        sh("ip", "-n", ns, "link", "set", mine, "up")
        sh("ip", "-n", ns, "link", "set", peer, "up")

    def start_frr(self) -> None:
        for r in ROUTERS:
            d = self.tmp / r
            d.mkdir()
            conf = d / "frr.conf"
            conf.write_text("\n".join([f"hostname {r}", *OSPF_CONF[r]]) + "\n")
            shutil.chown(d, "frr", "frr")
            shutil.chown(conf, "frr", "frr")
            for daemon in ("zebra", "ospfd"):
                sh(
                    "ip",
                    "netns",
                    "exec",
                    self.ns[r],
                    f"/usr/lib/frr/{daemon}",
                    "-d",
                    "-N",
                    self.ns[r],
                    "-f",
                    str(conf),
                    "--log",
                    f"file:{d}/{daemon}.log",
                )

    def start_exporters(self) -> None:
        for i, r in enumerate(ROUTERS, 1):
            log = (self.tmp / r / "exporter.log").open("wb")
            self.exporters.append(
                subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        self.ns[r],
                        sys.executable,
                        "-m",
                        "appliance.lab.bgpls_exporter",
                        "--vtysh-ns",
                        self.ns[r],
                        "--peer",
                        "198.18.41.254",
                        "--local-as",
                        "65000",
                        "--name",
                        r,
                        "--local-address",
                        f"198.18.41.{i}",
                        "--poll",
                        "0.5",
                        "--max-poll",
                        "0.5",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=Path(__file__).resolve().parents[2],
                )
            )

    def truth(self) -> tuple[set[tuple[str, str, str, str]], set[tuple[str, str]]]:
        """Adjacencies (router, neighbour, local addr, neighbour addr) and prefixes (router, prefix)
        read from the kernel: every OSPF-facing interface address (not ctl, not 127/8)."""
        addrs: dict[str, list[ipaddress.IPv4Interface]] = {}
        for r in ROUTERS:
            for link in json.loads(sh("ip", "-n", self.ns[r], "-j", "-4", "addr", "show")):
                up = "UP" in link.get("flags", []) and "NO-CARRIER" not in link.get("flags", [])
                for a in link.get("addr_info", []):
                    itf = ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}")
                    if link["ifname"] != "ctl" and not itf.ip.is_loopback and up:
                        addrs.setdefault(r, []).append(itf)
        return adjacencies(addrs), prefixes(addrs)

    def teardown(self) -> None:
        for proc in self.exporters:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in self.exporters:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for r in ROUTERS:
            for daemon in ("ospfd", "zebra"):
                pidfile = Path("/var/run/frr") / self.ns[r] / f"{daemon}.pid"
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            shutil.rmtree(Path("/var/run/frr") / ns, ignore_errors=True)
        if os.environ.get("SAVD_KEEP_LAB_LOGS"):
            print(f"lab logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture
def lab(require_root: None) -> Iterator[Lab]:
    if not Path("/usr/lib/frr/ospfd").exists():
        pytest.fail("FRR (ospfd) not installed: run scripts/setup")
    lab = Lab()
    try:
        lab.build()
        lab.start_frr()
        yield lab
    finally:
        lab.teardown()


until = partial(waiting.until, timeout_s=40.0)  # this module's wait per step


def test_exporter_exabgp_topology_matches_lab_and_follows_changes(lab: Lab) -> None:
    async def scenario() -> None:
        speaker = ExaBgpSpeaker(
            lab.tmp / "appliance",
            [
                ExaNeighbor(
                    f"198.18.41.{i}",
                    "198.18.41.254",
                    65000,
                    65000,
                    "198.18.41.254",
                    ("bgp-ls bgp-ls",),
                    passive=True,
                    name=r,
                )
                for i, r in enumerate(ROUTERS, 1)
            ],
            netns=lab.ns["ap"],
            listen=("198.18.41.254", 179),
        )
        ingest = TopologyIngest()
        restarts: list[SpeakerRestarted] = []

        async def consume() -> None:
            async for ev in speaker.events():
                if isinstance(ev, SpeakerRestarted):
                    restarts.append(ev)
                ingest.handle(ev)

        await speaker.start()
        consumer = asyncio.create_task(consume())
        try:
            lab.start_exporters()
            topo = ingest.topology

            def matches() -> Any:
                adj, expected = lab.truth()
                links = {(lk.local, lk.remote, lk.local_address, lk.remote_address) for lk in topo.links()}
                learned = {(p.router, p.prefix) for p in topo.igp_prefixes()}
                routers = [r.name for r in topo.routers()]
                return graph_mismatch(links, adj, learned, expected, routers, ROUTERS)

            await until(matches, "learned graph == lab topology")
            assert topo.neighbours("r2") == ("r1", "r3")
            names = {(i.router, i.name) for i in topo.interfaces()}
            assert names == {("r1", "eth1"), ("r2", "eth1"), ("r2", "eth2"), ("r3", "eth1")}
            tagged = [p for p in topo.igp_prefixes() if p.prefix == "198.18.14.0/24"]
            assert [(p.router, p.route_tags) for p in tagged] == [("r3", (0xA0000001,))]
            assert topo.routers_serving("198.18.13.77/32") == ("r3",)
            assert ingest.eor_seen == {"198.18.41.1", "198.18.41.2", "198.18.41.3"}
            size = len(topo)

            sh("ip", "-n", lab.ns["r2"], "link", "set", "eth2", "down")
            await until(
                lambda: not any({lk.local, lk.remote} == {"r2", "r3"} for lk in topo.links()) or topo.links(),
                "r2-r3 link withdrawn",
            )
            await until(matches, "graph without r2-r3")
            assert topo.neighbours("r2") == ("r1",) and topo.neighbours("r3") == ()

            sh("ip", "-n", lab.ns["r2"], "link", "set", "eth2", "up")
            await until(matches, "r2-r3 link restored")
            assert topo.neighbours("r3") == ("r2",) and len(topo) == size

            before = topo.to_dict()
            pid = speaker.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await until(lambda: bool(restarts) or "no restart yet", "ExaBGP restarted")
            await until(
                lambda: ingest.eor_seen == {"198.18.41.1", "198.18.41.2", "198.18.41.3"} or ingest.eor_seen,
                "every exporter re-sent its table and End-of-RIB",
            )
            await until(matches, "graph after ExaBGP restart")
            after = topo.to_dict()
            assert len(topo) == size  # re-announcements replaced, nothing duplicated
            assert {k: after[k] for k in ("routers", "links", "prefixes")} == {
                k: before[k] for k in ("routers", "links", "prefixes")
            }
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            await speaker.stop()

    asyncio.run(scenario())
