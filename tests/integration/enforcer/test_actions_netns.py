"""Rate-limit and redirect-to-IP against the real kernel: veth-linked scratch namespaces, UDP sent from a
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
from appliance.enforcer.steering import Steering

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


IETF_REDIRECT_INSP = {"value": 0x010CC6121E020000}   # redirect-to-nexthop-ietf 198.18.30.2


def test_redirect_to_ip_steers_one_source_to_the_inspection_host(netns: dict[str, str]) -> None:
    """src (198.18.1.1, 198.18.2.1) -> rtr -> dst (normal next hop for 198.19.0.0/24) or insp (the
    redirect target); withdrawn, everything goes the normal way again and the policy routing is gone."""
    src, rtr, dst, insp = netns["src"], netns["rtr"], netns["dst"], netns["insp"]
    link(src, "198.18.10.2/24", rtr, "198.18.10.1/24")
    link(rtr, "198.18.20.1/24", dst, "198.18.20.2/24")
    link(rtr, "198.18.30.1/24", insp, "198.18.30.2/24")
    for addr in ("198.18.1.1/32", "198.18.2.1/32"):
        sh("ip", "-n", src, "addr", "add", addr, "dev", _veth(src))
    sh("ip", "-n", src, "route", "add", "default", "via", "198.18.10.1")
    sh("ip", "-n", rtr, "route", "add", "198.18.1.0/24", "via", "198.18.10.2")
    sh("ip", "-n", rtr, "route", "add", "198.18.2.0/24", "via", "198.18.10.2")
    sh("ip", "-n", rtr, "route", "add", "198.19.0.0/24", "via", "198.18.20.2")
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=rtr)
    matches = {"one": "ip saddr 198.18.1.1 ip daddr 198.19.0.10",
               "two": "ip saddr 198.18.2.1 ip daddr 198.19.0.10"}
    count_table(dst, matches)
    count_table(insp, matches)
    for source in ("198.18.1.1", "198.18.2.1"):   # neighbours resolved on every hop before counting
        send(src, source, "198.19.0.10", 1)
    base_dst, base_insp = counts(dst), counts(insp)

    table = NftTable(table="savd_test", netns=rtr)
    steering = Steering(netns=rtr)
    redirected = route("198.18.1.0/24", IETF_REDIRECT_INSP)
    unreachable = decode_route("ipv4 flow", {"source-ipv4": ["198.18.2.0/24"]},
                               {"extended-community": [{"value": 0x010CC61263630000}]})   # 198.18.99.99
    try:
        marks = steering.sync([redirected.action.redirect_ip, unreachable.action.redirect_ip])
        assert set(marks) == {"198.18.30.2"}
        plan = build_plan([redirected, unreachable], {}, OPTIONS, marks=marks)
        states = {s.source: s.state for s in plan.statuses}
        assert states == {"198.18.1.0/24": "installed", "198.18.2.0/24": "degraded"}
        table.apply(plan)
        for source in ("198.18.1.1", "198.18.2.1"):
            send(src, source, "198.19.0.10", 20)
        got_dst, got_insp = counts(dst), counts(insp)
        assert got_insp["one"] - base_insp["one"] == 20 and got_dst["one"] == base_dst["one"]
        assert got_dst["two"] - base_dst["two"] == 20 and got_insp["two"] == base_insp["two"]
        assert per_route(table.counters()[0])[redirected.rid].packets == 20

        table.apply(build_plan([], {}, OPTIONS))   # withdrawn: marks go first, then the policy routing
        assert steering.sync([]) == {}
        assert "lookup 59" not in sh("ip", "rule", "show", ns=rtr)
        send(src, "198.18.1.1", "198.19.0.10", 20)
        assert counts(dst)["one"] - got_dst["one"] == 20 and counts(insp)["one"] == got_insp["one"]
    finally:
        steering.close()
        table.delete()


def test_monitor_log_rule_is_accepted_by_nft(netns: dict[str, str]) -> None:
    """A sampled, rate-limited route with a log group: nft takes the three rules in one transaction."""
    sampled = route("198.18.1.0/24", {"value": 0x8007000000000002}, RATE_PKTS_20)
    table = NftTable(table="savd_test", netns=netns["rtr"])
    options = PlanOptions(table="savd_test", sample_group=5)
    assert table.apply(build_plan([sampled], {}, options)).mode == "full"
    listed = sh("nft", "list", "chain", "inet", "savd_test", "c_any", ns=netns["rtr"])
    assert 'log prefix "savd ' in listed and "group 5" in listed and "limit rate over 20/second" in listed
