"""The daemon's recompute path after one report or path change: incremental (appliance.recompute) against
a full compute() of the same snapshot, measured in the same run.

    .venv/bin/python bench/recompute_bench.py [--paths 100000] [--changes 20]

Synthetic mid-size state: 4 border routers, 8 eBGP customer/peer/provider interfaces each, `--paths` paths
spread over them (prefixes in 198.18.0.0/15 and 2001:db8::/32 sub-blocks, private ASNs), one VRP per 4
prefixes, 200 reports. Each change is one store change (a path announced or withdrawn, a report announced or
withdrawn) followed by the daemon's call `engine(store.snapshot())`; the baseline is `compute()` of the
same snapshot. Prints median times and the ratio full / incremental. Then what the daemon does with the
new rules (`Daemon._publish` and the FlowSpec listener): diff against the previous set, save it in the
journal, compile it for FlowSpec with the delivery's table cache; baseline in the same run: the same work
done whole (the set serialised whole, a diff through each rule's dict form, a compile without cache).
The store's snapshot after a path change is measured against rebuilding the path kind from scratch (sort
the whole table, one frozenset per fact: what `snapshot()` did before it patched), on the same facts in
the same run.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType

from appliance.config import parse_config
from appliance.engine.snapshot import compute
from appliance.flowspec.compiler import TableCache, compile_ruleset
from appliance.model import BgpPath, Interface, Neighbor, PrefixReport, Relationship, Router, SavRuleSet, Vrp
from appliance.recompute import ConfigEngine
from appliance.sources.assemble import engine_input
from appliance.state import Announce, StateSnapshot, StateStore, Withdraw
from appliance.state.changes import Change
from appliance.state.facts import Fact
from appliance.state.journal import Journal
from appliance.state.store import _KEYS

RELS = (Relationship.CUSTOMER, Relationship.PEER, Relationship.PROVIDER)


def prefix(i: int) -> str:
    """Distinct for i < 131072: /48s in 2001:db8::/32, /29s in 198.18.0.0/15."""
    if i % 2:
        return str(ipaddress.IPv6Network((int(ipaddress.IPv6Address("2001:db8::")) + (i // 2 << 80), 48)))
    return str(ipaddress.IPv4Network((int(ipaddress.IPv4Address("198.18.0.0")) + (i // 2 << 3), 29)))


def state(n_paths: int) -> list[Fact]:
    facts: list[Fact] = []
    for r in range(4):
        name = f"r{r}"
        facts.append(Router(name, f"198.18.255.{r + 1}", 65000))
        for i in range(8):
            facts += [Interface(name, f"eth{i}", external=True),
                      Neighbor(name, f"eth{i}", 64512 + i, RELS[i % 3])]
    for i in range(n_paths):
        r, iface = i % 4, (i // 4) % 8
        origin = 4200000000 + (i // 7) % 5000
        facts.append(BgpPath(f"r{r}", f"eth{iface}", prefix(i // 3), (64512 + iface, 64600 + i % 50, origin)))
        if i % 12 == 0:
            facts.append(Vrp(prefix(i // 3), 48 if (i // 3) % 2 else 29, origin))
    facts += [PrefixReport(f"r{i % 4}", "lan0", f"198.19.{i}.0/24") for i in range(200)]
    return facts


def changes(n: int) -> list[Change]:
    out: list[Change] = []
    for i in range(n):
        path = BgpPath(f"r{i % 4}", "eth1", f"198.19.{200 + i}.0/24", (64513, 4200009999), 0)
        report = PrefixReport(f"r{i % 4}", "lan1", f"198.19.{100 + i}.0/24")
        out += [Announce("bgp", (path,)), Announce("api", (report,)), Withdraw("bgp", (path,)),
                Withdraw("api", (report,))]
    return out


def rebuild_paths(snapshot: StateSnapshot) -> float:
    """Seconds to build the path kind's part of `snapshot` from scratch; checks the patched one equals it."""
    table = {f: set(s) for f, s in snapshot.sources["path"].items()}  # as the store's old live table
    gc.collect()
    gc.disable()  # its passes depend on what else the heap holds: they doubled this figure in some runs
    t0 = time.perf_counter()
    paths = tuple(sorted(table, key=_KEYS[BgpPath]))
    sources = MappingProxyType({f: frozenset(s) for f, s in table.items()})
    elapsed = time.perf_counter() - t0
    gc.enable()
    if paths != snapshot.paths or len(sources) != len(snapshot.sources["path"]):
        raise SystemExit("MISMATCH: patched snapshot differs from a full sort")
    return elapsed  # `sources` is freed after the timing, as the store frees an old snapshot in apply()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=100_000)
    ap.add_argument("--changes", type=int, default=5, help="rounds of 4 changes")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(f'[appliance]\nasn = 65000\nrouter_id = "198.18.20.10"\ndata_dir = "{tmp}"\n',
                              Path(tmp) / "savd.toml")
    store = StateStore()
    store.apply(Announce("bgp", tuple(state(args.paths))))
    engine = ConfigEngine(config)
    t0 = time.perf_counter()
    engine(store.snapshot())
    print(f"state: {args.paths} paths, first build {time.perf_counter() - t0:.2f} s")
    inc, full, snap_t, path_snaps = [], [], [], []
    journal = Journal.open(Path(tempfile.mkdtemp(prefix="savd-bench-")))
    cache, previous = TableCache(), engine(store.snapshot())
    journal.save_ruleset(previous, 0, 0.0)
    compile_ruleset(previous, cache=cache)
    publish, publish_whole = [], []
    for change in changes(args.changes):
        store.apply(change)
        gc.collect()
        gc.disable()  # the snapshot and its baseline are timed without the collector (see rebuild_paths)
        t0 = time.perf_counter()
        snapshot = store.snapshot()
        t1 = time.perf_counter()
        gc.enable()
        if isinstance(change, Announce | Withdraw) and isinstance(change.facts[0], BgpPath):
            snap_t.append(t1 - t0)
            path_snaps.append(snapshot)
        got = engine(snapshot)
        t2 = time.perf_counter()
        want = compute(engine_input(config, snapshot))
        t3 = time.perf_counter()
        if got != want:
            print("MISMATCH: incremental rules differ from compute()", file=sys.stderr)
            return 1
        inc.append(t2 - t1)
        full.append(t3 - t2)
        publish.append(publish_time(journal, cache, previous, got))
        publish_whole.append(publish_whole_time(previous, got))
        previous = got
    mi, mf = statistics.median(inc), statistics.median(full)
    print(f"changes: {len(inc)} (path and report, announce and withdraw); rebuilds: {engine.rebuilds - 1}")
    # after the engine timings: its 100k frozensets would otherwise bill garbage collections to them
    ms, mr = statistics.median(snap_t), statistics.median(rebuild_paths(s) for s in path_snaps)
    print(f"store snapshot after a path change: {ms * 1000:.2f} ms median (both paths pay it); "
          f"path kind rebuilt whole (before): {mr * 1000:.1f} ms; ratio {mr / ms:.1f}x")
    print(f"incremental: {mi * 1000:.1f} ms median, full compute(): {mf * 1000:.1f} ms median")
    print(f"ratio full/incremental: {mf / mi:.1f}x")
    mp, mw = statistics.median(publish), statistics.median(publish_whole)
    print(f"publish (diff + journal + FlowSpec compile): {mp * 1000:.1f} ms median; done whole: "
          f"{mw * 1000:.0f} ms median; ratio {mw / mp:.1f}x")
    journal.close()
    return 0


def publish_time(journal: Journal, cache: TableCache, old: SavRuleSet, new: SavRuleSet) -> float:
    t0 = time.perf_counter()
    old.diff(new)
    journal.save_ruleset(new, 1, 0.0)
    compile_ruleset(new, cache=cache)
    return time.perf_counter() - t0


def publish_whole_time(old: SavRuleSet, new: SavRuleSet) -> float:
    t0 = time.perf_counter()
    before = {r.key(): r.to_dict() for r in old.rules}
    _ = [r.key() for r in new.rules if before.get(r.key()) != r.to_dict()]
    new.to_json()
    compile_ruleset(new)
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
