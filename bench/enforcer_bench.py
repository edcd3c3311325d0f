"""Enforcer benchmarks: rule announce -> active in nftables, and nftables load times.

1. latency: in the enforcer testbed (real FRR 8.4.4, ExaBGP pusher, savd-enforcer), announce one rule at
   the pusher and time until `nft monitor` in the router shows it (event-driven, no polling); then the
   same for its withdraw. Baseline in the same run: the pusher's own API round trip (command -> ExaBGP
   `done`), i.e. the part no enforcer can save. Target: median < 300 ms.
2. bulk: push N rules in one burst at the pusher; time until the enforcer's table holds all N.
3. load: N discard routes (one interface group) rendered and applied with `nft -f` in a scratch
   namespace: whole table, then one added route on top (incremental transaction). Baseline in the same
   run: the bare minimum, one interval set without counters and one rule.
4. delta: N routes installed, then deltas of 10 new routes (and their withdrawal) through the service's
   path: RouteTable update -> take_changes -> allowlist index -> Planner.update -> NftTable.apply.
   Sizes include one just under a multiple of 1,024 so the delta crosses it (the old planner rehashed
   every set there). Baseline in the same run: bare `nft add element` of the same 10 prefixes into one
   N-element interval set in a scratch table. Target: delta / baseline <= 1.2 at any size.

    .venv/bin/python bench/enforcer_bench.py [--samples 30] [--bulk 1000 10000] [--load 1000 10000 100000]
                                             [--delta 100000 102395] [--delta-samples 5]
"""

from __future__ import annotations

import argparse
import ipaddress
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support.testbed

from support.testbed import Testbed, wait_for  # tests/ is on sys.path

from appliance.enforcer.allowlist import CatchAllIndex
from appliance.enforcer.nft import NftTable
from appliance.enforcer.nftplan import Planner, PlanOptions, build_plan
from appliance.enforcer.route import decode_route
from appliance.enforcer.table import RouteTable, sorted_routes
from appliance.flowspec import render_exabgp
from appliance.flowspec.compiler import CompileOptions, compile_ruleset
from appliance.flowspec.diff import diff as flow_diff
from appliance.flowspec.rules import ActionKind, FlowAction, FlowMatch, FlowRule
from appliance.model import InterfaceRules, ListKind, SavRuleSet

G7 = "scope { interface-set transitive:input:1:7; }"
DISCARD = {"extended-community": [{"value": 0x8006000000000000}, {"value": 0x0702000000014007}]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Monitor:
    """`nft monitor` in the router namespace; lines with their arrival time."""

    def __init__(self, tb: Testbed) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", tb.ns("r"), "nft", "monitor"],
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.3)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line))

    def wait(self, needle: str, timeout_s: float = 10.0) -> float:
        deadline = time.monotonic() + timeout_s
        while True:
            at, line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if needle in line:
                return at

    def drain(self) -> None:
        while not self.lines.empty():
            self.lines.get_nowait()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def latency(tb: Testbed, samples: int) -> None:
    mon = Monitor(tb)
    announce, withdraw, acks = [], [], []
    try:
        for i in range(samples):
            prefix = f"198.19.200.{i}/32"
            mon.drain()
            t0 = time.monotonic()
            tb.push([f"announce flow route {{ match {{ source {prefix}; }} {G7} then {{ discard; }} }}"])
            acks.append(time.monotonic() - t0)
            announce.append(mon.wait(f"ip saddr {prefix.split('/')[0]}") - t0)
            time.sleep(0.05)
            mon.drain()
            t1 = time.monotonic()
            tb.push([f"withdraw flow route {{ match {{ source {prefix}; }} }}"])
            withdraw.append(mon.wait("delete table") - t1)
            time.sleep(0.05)
    finally:
        mon.close()
    base = statistics.median(acks)
    for name, values in (("announce->active", announce), ("withdraw->removed", withdraw)):
        med = statistics.median(values)
        print(
            f"latency {name:18} n={len(values)} median={med * 1000:6.1f} ms"
            f" p95={pct(values, 0.95) * 1000:6.1f} ms"
            f"  baseline(pusher ack)={base * 1000:5.1f} ms ratio={med / base:5.1f}x  target<300 ms"
        )


def ruleset_latency(tb: Testbed, samples: int) -> None:
    """SavRuleSet change -> compile (appliance.flowspec) -> ExaBGP text -> FRR -> enforcer -> nftables."""
    opts = CompileOptions(group_ids={("r", "r-h1"): 7})
    base_rules = [InterfaceRules("r", "r-h1", ListKind.BLOCK, ("198.19.210.0/24",))]
    pushed = compile_ruleset(SavRuleSet.of(base_rules), opts).rules()
    tb.push([render_exabgp.announce(r, group_asn=1) for r in pushed])
    mon = Monitor(tb)
    values, compile_s = [], []
    try:
        for i in range(samples):
            prefix = f"198.19.{220 + i // 200}.{i % 200}"
            ruleset = SavRuleSet.of(
                [InterfaceRules("r", "r-h1", ListKind.BLOCK, ("198.19.210.0/24", f"{prefix}/32"))]
            )
            mon.drain()
            t0 = time.monotonic()
            wanted = compile_ruleset(ruleset, opts).rules()
            change = flow_diff(pushed, wanted)
            compile_s.append(time.monotonic() - t0)
            tb.push(
                [
                    render_exabgp.announce(r, group_asn=1) if op == "announce" else render_exabgp.withdraw(r)
                    for op, r in change.steps()
                ]
            )
            values.append(mon.wait(f"ip saddr {prefix}") - t0)
            pushed = wanted
            time.sleep(0.05)
    finally:
        mon.close()
        tb.push([render_exabgp.withdraw(r) for r in pushed])
    med, base = statistics.median(values), statistics.median(compile_s)
    print(
        f"latency {'ruleset->active':18} n={len(values)} median={med * 1000:6.1f} ms"
        f" p95={pct(values, 0.95) * 1000:6.1f} ms  baseline(compile+diff)={base * 1000:5.1f} ms"
        f" ratio={med / base:5.1f}x  target<300 ms"
    )


def bulk(tb: Testbed, n: int) -> None:
    commands = [
        f"announce flow route {{ match {{ source 198.20.{i // 256}.{i % 256}/32; }} {G7} "
        "then { discard; } }"
        for i in range(n)
    ]
    t0 = time.monotonic()
    tb.push(commands)
    pushed = time.monotonic() - t0

    wait_for(f"{n} rules in nftables", lambda: installed(tb, n), 1200, 0.2)
    total = time.monotonic() - t0
    print(
        f"bulk    {n:7} rules via ExaBGP: pushed (acked) in {pushed:6.2f} s, all active in nftables after"
        f" {total:6.2f} s ({n / total:7.0f} rules/s end to end)"
    )
    tb.push([c.replace("announce", "withdraw").replace(f" {G7} then {{ discard; }}", "") for c in commands])
    wait_for("table removed", lambda: installed(tb, 0), 1200, 0.5)


def installed(tb: Testbed, n: int) -> bool:
    """The enforcer has applied its latest table generation and it holds exactly n routes."""
    st = tb.enforcer_status()
    return bool(st["applied_generation"] == st["generation"] and st["installed"] == n)


def bulk_gobgp(tb: Testbed, n: int) -> None:
    rules = [
        FlowRule(
            "r",
            FlowMatch(f"198.{20 + i // 65536}.{(i // 256) % 256}.{i % 256}/32"),
            FlowAction(ActionKind.DISCARD),
            (7,),
        )
        for i in range(n)
    ]
    t0 = time.monotonic()
    tb.gobgp_call("announce", "198.18.100.5", rules)
    pushed = time.monotonic() - t0
    wait_for(f"{n} rules in nftables", lambda: installed(tb, n), 1800, 0.5)
    total = time.monotonic() - t0
    print(
        f"bulk    {n:7} rules via GoBGP:  pushed in {pushed:6.2f} s, all active in nftables after"
        f" {total:6.2f} s ({n / total:7.0f} rules/s end to end)"
    )
    t1 = time.monotonic()
    tb.gobgp_call("withdraw_all")
    wait_for("table removed", lambda: installed(tb, 0), 1800, 0.5)
    print(
        f"bulk    {n:7} rules via GoBGP:  withdraw all -> table removed after {time.monotonic() - t1:6.2f} s"
    )


def load(n: int, ns: str) -> None:
    nets = list(ipaddress.ip_network("10.0.0.0/8").subnets(new_prefix=28))[:n]
    t0 = time.monotonic()
    routes = sorted_routes(decode_route("ipv4 flow", {"source-ipv4": [str(p)]}, DISCARD) for p in nets)
    plan = build_plan(routes, {7: ["lo"]}, PlanOptions(table="savd_bench"))
    planned = time.monotonic() - t0
    table = NftTable(table="savd_bench", netns=ns)
    full = table.apply(plan)
    extra = decode_route("ipv4 flow", {"source-ipv4": ["192.0.2.0/24"]}, DISCARD)
    plan2 = build_plan(sorted_routes([*routes, extra]), {7: ["lo"]}, PlanOptions(table="savd_bench"))
    inc = table.apply(plan2)
    counters_t0 = time.monotonic()
    counters, problems = table.counters()
    counters_s = time.monotonic() - counters_t0
    table.delete()
    elems = ", ".join(str(p) for p in nets)
    text = (
        "table inet savd_base {}\ndelete table inet savd_base\n"
        f"table inet savd_base {{\n set s {{ type ipv4_addr; flags interval; elements = {{ {elems} }} }}\n"
        " chain pre { type filter hook prerouting priority -300;"
        " policy accept;\n ip saddr @s drop\n }\n}\n"
    )
    b0 = time.monotonic()
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True, check=True)
    base = time.monotonic() - b0
    subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "savd_base"], check=True)
    assert not problems and len(counters) == n + 1, (problems[:3], len(counters))
    print(
        f"load    {n:7} rules: plan {planned:6.3f} s, nft full {full.seconds:6.3f} s ({len(plan.sets)} sets),"
        f" +1 route incremental {inc.seconds:6.3f} s, counters read {counters_s:6.3f} s;"
        f" baseline one bare set {base:6.3f} s, ratio full/baseline {full.seconds / base:4.1f}x"
    )


def _flow(prefixes: list[str]) -> dict[str, dict[str, list[dict[str, list[str]]]]]:
    return {"ipv4 flow": {"no-nexthop": [{"source-ipv4": [p]} for p in prefixes]}}


def _bare_add(ns: str, prefixes: list[str]) -> float:
    elems = ", ".join(prefixes)
    t0 = time.monotonic()
    subprocess.run(["ip", "netns", "exec", ns, "nft", "add", "element", "inet", "savd_base", "s",
                    f"{{ {elems} }}"], check=True)
    return time.monotonic() - t0


def delta(n: int, ns: str, samples: int, batch: int = 10) -> None:
    """A 10-route delta on N installed routes vs bare `nft add element` of the same 10 (see module doc)."""
    nets = [str(p) for p in ipaddress.ip_network("10.0.0.0/8").subnets(new_prefix=28)][:n]
    extra = [str(p) for p in ipaddress.ip_network("172.16.0.0/12").subnets(new_prefix=28)][:samples * batch]
    attrs = {"extended-community": DISCARD["extended-community"]}
    table, index = RouteTable(), CatchAllIndex()
    planner = Planner({7: ["lo"]}, PlanOptions(table="savd_delta"))
    nft = NftTable(table="savd_delta", netns=ns)

    def step(announce: list[str], withdraw: list[str]) -> tuple[float, float, str]:
        t0 = time.monotonic()
        gone = {"ipv4 flow": [{"source-ipv4": [p]} for p in withdraw]}
        table.apply_update("peer", attrs, _flow(announce), gone)
        changes = table.take_changes()
        index.update(changes)
        plan = planner.update(changes, index.held((), True))
        planned = time.monotonic() - t0
        mode = nft.apply(plan).mode
        return time.monotonic() - t0, planned, mode

    t0 = time.monotonic()
    table.apply_update("peer", attrs, _flow(nets), {})
    changes = table.take_changes()
    index.update(changes)
    nft.apply(planner.load(table.merged.values(), index.held((), True)))
    loaded = time.monotonic() - t0
    elems = ", ".join(nets)
    text = ("table inet savd_base {}\ndelete table inet savd_base\ntable inet savd_base {\n"
            f" set s {{ type ipv4_addr; flags interval; elements = {{ {elems} }} }}\n"
            " chain pre { type filter hook prerouting priority -300; policy accept;\n"
            " ip saddr @s drop\n }\n}\n")
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True, check=True)
    adds, withdraws, plans, bases, modes = [], [], [], [], set()
    for i in range(samples):
        batch_prefixes = extra[i * batch:(i + 1) * batch]
        total, planned, mode = step(batch_prefixes, [])
        adds.append(total)
        plans.append(planned)
        modes.add(mode)
        bases.append(_bare_add(ns, batch_prefixes))
        total, planned, mode = step([], batch_prefixes)
        withdraws.append(total)
        plans.append(planned)
        modes.add(mode)
    nft.delete()
    subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "savd_base"], check=True)
    base = statistics.median(bases)
    add, wd = statistics.median(adds), statistics.median(withdraws)
    print(f"delta   {n:7} routes (+{batch}/-{batch}, {samples} samples, load {loaded:5.1f} s,"
          f" modes {sorted(modes)}):"
          f" add median {add:6.3f} s (max {max(adds):6.3f}), withdraw median {wd:6.3f} s;"
          f" plan median {statistics.median(plans) * 1000:5.1f} ms; baseline bare add element {base:6.3f} s;"
          f" ratio add/baseline {add / base:4.2f}x withdraw/baseline {wd / base:4.2f}x (target <= 1.2x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--bulk", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--load", type=int, nargs="*", default=[1000, 10000, 100000])
    parser.add_argument("--bulk-gobgp", type=int, nargs="*", default=[10000])
    parser.add_argument("--delta", type=int, nargs="*", default=[100000, 102395])
    parser.add_argument("--delta-samples", type=int, default=5)
    args = parser.parse_args()
    ns = "enfbench-" + str(threading.get_native_id())
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for n in args.load:
            load(n, ns)
        for n in args.delta:
            delta(n, ns, args.delta_samples)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    if args.samples or args.bulk or args.bulk_gobgp:
        with Testbed(gobgp=bool(args.bulk_gobgp)) as tb:
            if args.samples:
                latency(tb, args.samples)
                ruleset_latency(tb, args.samples)
            for n in args.bulk:
                bulk(tb, n)
            for n in args.bulk_gobgp:
                bulk_gobgp(tb, n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
