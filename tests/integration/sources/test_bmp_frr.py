"""savd's BMP station fed by a real FRR 8.4.4 bgpd (`-M bmp`), listening inside the router's namespace.

Two namespaces joined by a veth: the router (bgpd -Z -M bmp, AS 64600) and its eBGP neighbour (ExaBGP
5.0.15, AS 64601, add-path send/receive, static IPv4 + IPv6 routes, one with an AS_SET). bgpd's
`bmp targets` connects to 127.0.0.1 in its own namespace, where the station listens through `netns=`.

What FRR 8.4.4 needs and does (found here, written down in the README of bench/ and the report):
- `neighbor X soft-reconfiguration inbound` per address family: without it bgpd keeps no Adj-RIB-In, and
  its pre-policy monitoring sends every received route as a withdrawal.
- no `bmp monitor ... loc-rib` (8.4 knows pre-policy and post-policy only).
- sysName = the `hostname` of the configuration; sysDescr = "FRRouting 8.4.4".
- own AS prepended to eBGP paths and no add-path ids: undone by the decoder (bmp.py docstring).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.waiting import until

from appliance.lab import frr, netns
from appliance.sources.paths.events import BmpEvent, PeerDown, PeerUp, Route, RouterUp, Routes
from appliance.sources.paths.station import BmpStation

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

BGPD = frr.FRR_SBIN / "bgpd"
BMP_MODULE = Path("/usr/lib/x86_64-linux-gnu/frr/modules/bgpd_bmp.so")
EXABGP = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "exabgp"
ROUTER_AS, PEER_AS = 64600, 64601
ROUTER_V4, PEER_V4 = "198.18.100.1", "198.18.100.2"
ROUTER_V6, PEER_V6 = "2001:db8:100::1", "2001:db8:100::2"
HOSTNAME = "bmp-r1"

ANNOUNCED = {
    "198.18.110.0/24": Route("198.18.110.0/24", (PEER_AS, 64700, 64800)),
    "198.18.111.0/24": Route("198.18.111.0/24", (PEER_AS, 64710), (64900, 64901)),
    "2001:db8:110::/48": Route("2001:db8:110::/48", (PEER_AS, 64720)),
}

EXABGP_CONF = f"""
neighbor {ROUTER_V4} {{
    router-id {PEER_V4};
    local-address {PEER_V4};
    local-as {PEER_AS};
    peer-as {ROUTER_AS};
    family {{ ipv4 unicast; ipv6 unicast; }}
    capability {{ add-path send/receive; }}
    static {{
        route 198.18.110.0/24 next-hop {PEER_V4} as-path [ {PEER_AS} 64700 64800 ];
        route 198.18.111.0/24 next-hop {PEER_V4} as-path [ {PEER_AS} 64710 ] ( 64901 64900 );
        route 2001:db8:110::/48 next-hop {PEER_V6} as-path [ {PEER_AS} 64720 ];
    }}
}}
"""
EXABGP_ENV = """[exabgp.daemon]
user = 'root'
drop = false
daemonize = false
[exabgp.log]
destination = 'stdout'
[exabgp.tcp]
bind = ''
"""


def bgpd_conf(port: int) -> str:
    af = [f"  neighbor {PEER_V4} activate", f"  neighbor {PEER_V4} soft-reconfiguration inbound"]
    return "\n".join([
        f"hostname {HOSTNAME}",
        f"router bgp {ROUTER_AS}",
        f" bgp router-id {ROUTER_V4}",
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",
        f" neighbor {PEER_V4} remote-as {PEER_AS}",
        f" neighbor {PEER_V4} timers connect 1",
        " address-family ipv4 unicast", *af, " exit-address-family",
        " address-family ipv6 unicast", *af, " exit-address-family",
        " bmp targets savd",
        f"  bmp connect 127.0.0.1 port {port} min-retry 100 max-retry 1000",
        "  bmp monitor ipv4 unicast pre-policy",
        "  bmp monitor ipv6 unicast pre-policy",
        " exit",
        "",
    ])


@dataclass
class Lab:
    ns_router: str
    ns_peer: str
    dir: Path
    pids: list[int]

    def start_bgpd(self, port: int) -> None:
        conf = self.dir / "bgpd.conf"
        conf.write_text(bgpd_conf(port))
        shutil.chown(conf, "frr", "frr")
        argv = frr.daemon_argv("bgpd", self.ns_router, ("-Z", "-M", "bmp", "-A", "127.0.0.1"),
                               self.dir / "bgpd.log", conf)
        netns.run(["ip", "netns", "exec", self.ns_router, *argv])   # -d: returns once daemonised
        pid_file = frr.run_dir(self.ns_router) / "bgpd.pid"
        self.pids.append(int(pid_file.read_text().strip()))

    def start_exabgp(self) -> None:
        (self.dir / "exabgp.conf").write_text(EXABGP_CONF)
        (self.dir / "exabgp.env").write_text(EXABGP_ENV)
        with open(self.dir / "exabgp.out", "wb") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns_peer, str(EXABGP), "--env-file", str(self.dir / "exabgp.env"),
                 "server", str(self.dir / "exabgp.conf")], stdout=out, stderr=subprocess.STDOUT)
        self.pids.append(proc.pid)

    def vtysh(self, *lines: str) -> str:
        argv = [*frr.vtysh_argv(self.ns_router), "-d", "bgpd"]
        for line in lines:
            argv += ["-c", line]
        return netns.run(argv, timeout_s=30)


@pytest.fixture
def lab(require_root: None) -> Iterator[Lab]:
    if not BGPD.exists() or not BMP_MODULE.exists():
        pytest.skip(f"FRR bgpd with BMP not installed ({BGPD}, {BMP_MODULE})")
    prefix = "bmp" + secrets.token_hex(3)
    lab = Lab(prefix + "r", prefix + "p", Path(tempfile.mkdtemp(prefix=prefix + "-")), [])
    lab.dir.chmod(0o755)
    try:
        for ns in (lab.ns_router, lab.ns_peer):
            netns.add_netns(ns, ns)
        netns.add_veth(lab.ns_router, prefix + "r0", lab.ns_peer, prefix + "p0", None, "router-peer")
        for ns, dev, v4, v6 in ((lab.ns_router, prefix + "r0", ROUTER_V4, ROUTER_V6),
                                (lab.ns_peer, prefix + "p0", PEER_V4, PEER_V6)):
            netns.run(["ip", "-n", ns, "addr", "add", v4 + "/30", "dev", dev])
            netns.run(["ip", "-n", ns, "addr", "add", v6 + "/64", "dev", dev, "nodad"])
        yield lab
    finally:
        netns.kill_pids(lab.pids)
        for ns in (lab.ns_router, lab.ns_peer):
            netns.kill_pids(netns.netns_pids(ns))
            netns.delete_netns(ns)
        shutil.rmtree(frr.run_dir(lab.ns_router), ignore_errors=True)
        shutil.rmtree(lab.dir, ignore_errors=True)


def rib(events: list[BmpEvent]) -> dict[str, Route]:
    """The pre-policy table the events describe (announce replaces, withdraw removes)."""
    table: dict[str, Route] = {}
    for ev in events:
        if isinstance(ev, Routes) and not ev.post_policy and ev.peer == PEER_V4:
            for prefix, _ in ev.withdrawn:
                table.pop(prefix, None)
            for route in ev.announced:
                table[route.prefix] = route
    return table


def test_frr_bmp_feeds_the_station_and_peer_shutdown_is_seen(lab: Lab) -> None:
    async def scenario() -> None:
        events: list[BmpEvent] = []
        station = BmpStation(("127.0.0.1", 0), netns=lab.ns_router, on_event=events.append)
        await station.start()
        try:
            await asyncio.to_thread(lab.start_bgpd, station.port)
            await asyncio.to_thread(lab.start_exabgp)
            await until(lambda: any(isinstance(e, RouterUp) for e in events) or events, "Initiation", 30)
            up = next(e for e in events if isinstance(e, RouterUp))
            assert (up.router, up.address, up.sys_name) == (HOSTNAME, "127.0.0.1", HOSTNAME)
            assert up.sys_descr.startswith("FRRouting 8.4")
            await until(lambda: PeerUp(HOSTNAME, PEER_V4, PEER_AS, PEER_V4, False) in events or events[-5:],
                        "PeerUp for the eBGP neighbour", 60)
            await until(lambda: rib(events) == ANNOUNCED or rib(events), "the announced routes", 60)
            assert not [e for e in events if type(e).__name__ == "Malformed"]
            [row] = station.status()
            assert (row["router"], row["peers_up"], row["routes_held"]) == (HOSTNAME, 1, 3)

            # (FRR also reports a PeerDown for every session not yet Established when BMP connects)
            seen = len(events)
            await asyncio.to_thread(lab.vtysh, "configure terminal", f"router bgp {ROUTER_AS}",
                                    f"neighbor {PEER_V4} shutdown")
            await until(lambda: any(isinstance(e, PeerDown) and e.peer == PEER_V4 for e in events[seen:])
                        or events[seen:], "PeerDown after `neighbor shutdown`", 10)
            down = next(e for e in events[seen:] if isinstance(e, PeerDown))
            assert down.router == HOSTNAME and down.reason.startswith("local-")  # "local-fsm fsm-event 0"
            assert station.status()[0]["routes_held"] == 0
        finally:
            await station.stop()

    asyncio.run(scenario())
