"""Rate-limit against the real kernel: veth-linked scratch namespaces, UDP sent from a
source namespace, packets counted where they arrive (an nft counter table of the test's own)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

from appliance.enforcer.nft import NftTable
from appliance.enforcer.nftplan import PlanOptions, build_plan, per_route
from appliance.enforcer.route import Route, decode_route

pytestmark = pytest.mark.integration

OPTIONS = PlanOptions(table="savd_test")
RATE_PKTS_20 = {"value": 0x800C000041A00000}   # traffic-rate-packets 20/s
RATE_BYTES_2000 = {"value": 0x8006000044FA0000}   # traffic-rate-bytes 2000 B/s


def sh(*argv: str, ns: str | None = None, check: bool = True, stdin: str | None = None) -> str:
    full = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    proc = subprocess.run(full, input=stdin, capture_output=True, text=True, check=False, timeout=60)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(full)}: {proc.stderr}")
    return proc.stdout


@pytest.fixture
def netns(require_root: None) -> Iterator[dict[str, str]]:
    """Namespaces named by role (src, rtr, dst, insp), with a random prefix; all removed afterwards."""
    prefix = "eact" + secrets.token_hex(3)
    names = {role: f"{prefix}{role}" for role in ("src", "rtr", "dst", "insp")}
    try:
        for name in names.values():
            sh("ip", "netns", "add", name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        yield names
    finally:
        for name in names.values():
            subprocess.run(["ip", "netns", "del", name], check=False)


def link(a: str, a_addr: str, b: str, b_addr: str) -> None:
    """A veth pair between namespaces `a` and `b` with these /24 addresses."""
    ia, ib = "v" + secrets.token_hex(4), "v" + secrets.token_hex(4)
    sh("ip", "link", "add", ia, "netns", a, "type", "veth", "peer", "name", ib, "netns", b)
    for ns, ifname, addr in ((a, ia, a_addr), (b, ib, b_addr)):
        sh("ip", "-n", ns, "addr", "add", addr, "dev", ifname)
        sh("ip", "-n", ns, "link", "set", ifname, "up")


def count_table(ns: str, names: dict[str, str], hook: str = "prerouting", priority: int = -200) -> None:
    """Named counters `name` for `match` (the test's own table, separate from the enforcer's)."""
    counters = "".join(f"counter {n} {{}}\n" for n in names)
    rules = "".join(f"{match} counter name {n}\n" for n, match in names.items())
    sh("nft", "-f", "-", ns=ns, stdin=f"table inet cnt {{\n{counters}chain c {{ type filter hook {hook} "
       f"priority {priority}; policy accept;\n{rules}}}\n}}\n")


def counts(ns: str) -> dict[str, int]:
    doc = json.loads(sh("nft", "-j", "list", "counters", "table", "inet", "cnt", ns=ns))
    return {c["counter"]["name"]: c["counter"]["packets"] for c in doc["nftables"] if "counter" in c}


def send(ns: str, source: str, dest: str, n: int, size: int = 100) -> None:
    code = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            f"s.bind(({source!r},0))\nfor _ in range({n}): s.sendto(b'x'*{size},({dest!r},9999))\n")
    sh(sys.executable, "-c", code, ns=ns)


def route(prefix: str, *communities: dict[str, int]) -> Route:
    return decode_route("ipv4 flow", {"source-ipv4": [prefix]}, {"extended-community": list(communities)})


def test_rate_limit_drops_the_excess_and_counts_it(netns: dict[str, str]) -> None:
    src, rtr = netns["src"], netns["rtr"]
    link(src, "198.18.10.2/24", rtr, "198.18.10.1/24")
    sh("ip", "-n", src, "addr", "add", "198.18.10.3/24", "dev", _veth(src))
    count_table(rtr, {"n_pk": "ip saddr 198.18.10.2 udp dport 9999",
                      "n_by": "ip saddr 198.18.10.3 udp dport 9999"}, hook="input", priority=0)
    sh("ping", "-c", "1", "-W", "2", "198.18.10.1", ns=src)   # neighbour resolved before the burst
    by_packets = route("198.18.10.2/32", RATE_PKTS_20)
    by_bytes = route("198.18.10.3/32", RATE_BYTES_2000)
    table = NftTable(table="savd_test", netns=rtr)
    table.apply(build_plan([by_packets, by_bytes], {}, OPTIONS))
    send(src, "198.18.10.2", "198.18.10.1", 300)
    send(src, "198.18.10.3", "198.18.10.1", 300)
    delivered = counts(rtr)
    enforced = per_route(table.counters()[0])
    for name, r in (("n_pk", by_packets), ("n_by", by_bytes)):
        c = enforced[r.rid]
        assert 0 < delivered[name] < 300, (name, delivered)
        assert c.packets == 300 and c.dropped_packets == 300 - delivered[name] > 0, (name, c)


def _veth(ns: str) -> str:
    out = json.loads(sh("ip", "-j", "link", "show", "type", "veth", ns=ns))
    return str(out[0]["ifname"])

