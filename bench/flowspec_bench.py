"""FlowSpec benchmarks: push rates into a real FRR bgpd, and rule counts against the exact CIDR cover.

    .venv/bin/python bench/flowspec_bench.py [all|push|compress|engine|incremental|pipeline]
                                             [--sizes 1000,10000,100000] [--speakers gobgp,exabgp]
                                             [--interfaces 16] [--quick]

push: N distinct /32 discard rules through the FlowPusher into FRR 8.4.4 bgpd (-Z) in a namespace
pair (bench/flowspec_lab.py); time until FRR's pfxRcd reaches N. Baselines measured in the same run
at the smallest size: ExaBGP with one command in flight (window 1) and GoBGP with one unary AddPath
per rule; the figures printed are rules/s and the ratio to that baseline.
compress: the compiler on CAIDA pfx2as (RouteViews 2016-02-02, ../shared/data) split by origin AS over
customer allowlists plus a provider blocklist: rules emitted vs the exact CIDR cover (the baseline a
merge-adjacent compiler emits), and compile time. engine: the same on the engine's Internet-scale rule
set (bench/engine_bench.py inputs: 1,000 customer interfaces of a CAIDA transit AS). Needs root for push.
incremental: the same inputs under EFP-uRPF B (1,000 interfaces sharing one 9,648-prefix allowlist, the
heaviest merge), one change at a time: nothing changed (equal rules, new objects), one interface's list
changed, the shared list changed; `Compiler.compile` (flowspec/incremental.py) against compile_ruleset
with a warm TableCache (what the FlowSpec delivery ran before) in the same run, outputs checked equal.
pipeline: N rules into a local gobgpd (no peer, no root): FlowPusher with its pipelined batches, and
with batches awaited one after another (pipeline_depth=1, as before), against one bare AddPathStream of
the same rules (protobufs built inside the timing too); each time until gobgpd acked.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import ipaddress
import statistics
import time
import zlib
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

from flowspec_lab import FRR_ADDR, FRR_AS, SPEAKER_ADDR, SPEAKER_AS, FrrFlowLab  # bench/ is sys.path[0]

from appliance.flowspec import (
    ActionKind,
    CompileOptions,
    FlowAction,
    FlowMatch,
    FlowRule,
    TableCache,
    compile_ruleset,
    diff,
)
from appliance.flowspec.aggregate import exact_cover
from appliance.flowspec.render_gobgp import to_path
from appliance.model import InterfaceRules, ListKind, SavRuleSet
from appliance.speakers.exabgp import ExaBgpSpeaker, ExaNeighbor
from appliance.speakers.gobgp import GoBgpNeighbor, GoBgpSpeaker, api, path_message
from appliance.speakers.pusher import ExaBgpFlowAdapter, FlowPusher

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bgp-routes" / "caida-pfx2as"


def synthetic_rules(n: int) -> list[FlowRule]:
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    discard = FlowAction(ActionKind.DISCARD)
    addrs = (ipaddress.IPv4Address(base + i) for i in range(n))
    return [FlowRule("r1", FlowMatch(f"{a}/32"), discard, (1,)) for a in addrs]


async def wait_received(lab: FrrFlowLab, n: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(lab.received, 4) >= n:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"FRR received {lab.received(4)} of {n} rules within {timeout}s")


async def timed(lab: FrrFlowLab, n: int, push: Awaitable[object]) -> tuple[float, float]:
    """(seconds until `push` returned, seconds until FRR holds `n` rules), both from its start."""
    t0 = time.monotonic()
    await push
    t_acked = time.monotonic()
    t_frr = await wait_received(lab, n, 900)
    return t_acked - t0, t_frr - t0


async def add_paths_unary(sp: GoBgpSpeaker, rules: list[FlowRule]) -> None:
    """The baseline: one unary AddPath call per rule."""
    for r in rules:
        await sp._stub.AddPath(api.AddPathRequest(table_type=api.GLOBAL, path=path_message(to_path(r))))


async def push_exabgp(lab: FrrFlowLab, rules: list[FlowRule], window: int) -> tuple[float, float]:
    nb = ExaNeighbor(FRR_ADDR, SPEAKER_ADDR, SPEAKER_AS, FRR_AS, SPEAKER_ADDR, ("ipv4 flow", "ipv6 flow"))
    sp = ExaBgpSpeaker(lab.dir / "exabgp", [nb], netns=lab.ns_speaker)
    await sp.start()
    try:
        await asyncio.to_thread(lab.wait, lab.session_up, "BGP session", 30)
        pusher = FlowPusher(ExaBgpFlowAdapter(sp, window=window))
        await pusher.session_up(FRR_ADDR)
        return await timed(lab, len(rules), pusher.push(FRR_ADDR, rules))
    finally:
        await sp.stop()


async def push_gobgp(lab: FrrFlowLab, rules: list[FlowRule], unary: bool) -> tuple[float, float]:
    sp = GoBgpSpeaker(lab.dir / "gobgp", asn=SPEAKER_AS, router_id=SPEAKER_ADDR, netns=lab.ns_speaker,
                      neighbors=[GoBgpNeighbor(FRR_ADDR, FRR_AS, local_address=SPEAKER_ADDR)])
    await sp.start()
    try:
        await asyncio.to_thread(lab.wait, lab.session_up, "BGP session", 30)
        if unary:
            return await timed(lab, len(rules), add_paths_unary(sp, rules))
        pusher = FlowPusher(sp)
        await pusher.session_up(FRR_ADDR)
        return await timed(lab, len(rules), pusher.push(FRR_ADDR, rules))
    finally:
        await sp.stop()


async def one_push(speaker: str, n: int, baseline: bool) -> tuple[float, float]:
    rules = synthetic_rules(n)
    with FrrFlowLab() as lab:
        if speaker == "exabgp":
            return await push_exabgp(lab, rules, window=1 if baseline else 256)
        return await push_gobgp(lab, rules, unary=baseline)


def bench_push(sizes: list[int], speakers: list[str]) -> None:
    print("speaker  rules    acked_s  in_frr_s  rules/s   vs_baseline")
    for speaker in speakers:
        n0 = min(sizes)
        _, base_t = asyncio.run(one_push(speaker, n0, baseline=True))
        base_rate = n0 / base_t
        label = "window=1" if speaker == "exabgp" else "unary AddPath"
        print(f"{speaker:8} {n0:<8} {'':8} {base_t:8.2f}  {base_rate:8.0f}  1.00 (baseline: {label})",
              flush=True)
        for n in sizes:
            acked, in_frr = asyncio.run(one_push(speaker, n, baseline=False))
            rate = n / in_frr
            print(f"{speaker:8} {n:<8} {acked:8.2f} {in_frr:8.2f}  {rate:8.0f}  {rate / base_rate:.2f}",
                  flush=True)


def load_pfx2as() -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for name in ("routeviews-rv2-20160202-1200.pfx2as.gz", "routeviews-rv6-20160202-1200.pfx2as.gz"):
        with gzip.open(DATA / name, "rt") as fh:
            for line in fh:
                addr, plen, origins = line.split()
                first = origins.split("_")[0].split(",")[0]
                out.append((str(ipaddress.ip_network(f"{addr}/{plen}", strict=False)), int(first)))
    return out


def internet_ruleset(interfaces: int) -> SavRuleSet:
    """Customer allowlists: origin ASes split over `interfaces` by CRC; a provider blocklist of the
    prefixes of the first customer interface (its own customers' space must not come from upstream)."""
    by_if: dict[int, list[str]] = {i: [] for i in range(interfaces)}
    for prefix, origin in load_pfx2as():
        by_if[zlib.crc32(str(origin).encode()) % interfaces].append(prefix)
    lists = [InterfaceRules("border", f"cust{i}", ListKind.ALLOW, tuple(p)) for i, p in by_if.items()]
    lists.append(InterfaceRules("border", "upstream", ListKind.BLOCK, tuple(by_if[0])))
    return SavRuleSet.of(lists)


def bench_compress(interfaces: int) -> None:
    if not DATA.is_dir():
        print(f"skip: {DATA} not present")
        return
    t = time.monotonic()
    ruleset = internet_ruleset(interfaces)
    listed = sum(len(r.prefixes) for r in ruleset.rules)
    t_load = time.monotonic() - t
    t = time.monotonic()
    for r in ruleset.rules:
        exact_cover(ipaddress.ip_network(p) for p in r.prefixes)
    t_cover = time.monotonic() - t
    t = time.monotonic()
    plan = compile_ruleset(ruleset, CompileOptions(max_rules_per_router=10_000_000))
    t_compile = time.monotonic() - t
    totals = plan.totals()
    print(f"rule set: {len(ruleset.rules)} interfaces, {listed} listed prefixes (load {t_load:.1f}s)")
    print(f"exact CIDR cover (+1 default per allowlist family): {totals.exact_cover} rules "
          f"(merge-only baseline, {t_cover:.1f}s)")
    print(f"emitted: {totals.emitted} rules = {totals.emitted / totals.exact_cover:.3f} of the exact cover "
          f"(compile {t_compile:.1f}s, {listed / t_compile:.0f} prefixes/s; {t_compile / t_cover:.1f}x the "
          "merge-only time)")


def bench_engine(quick: bool) -> None:
    """The engine's Internet-scale rule set (bench/engine_bench.py inputs) through the compiler."""
    import engine_bench  # bench/ is sys.path[0]

    from appliance.engine.snapshot import compute

    args = argparse.Namespace(paths=100_000 if quick else 1_000_000, vrps=60_000 if quick else 600_000,
                              customers=1000, aspa_every=20)
    if not engine_bench.REL.exists():
        print(f"skip: {engine_bench.REL} not present")
        return
    t = time.monotonic()
    snap, info = engine_bench.build(args)
    ruleset = compute(snap)
    t_engine = time.monotonic() - t
    listed = sum(len(r.prefixes) for r in ruleset.rules)
    distinct = len({(r.kind, r.prefixes) for r in ruleset.rules})
    t = time.monotonic()
    plan = compile_ruleset(ruleset, CompileOptions(max_rules_per_router=100_000_000))
    t_compile = time.monotonic() - t
    totals = plan.totals()
    unbounded = compile_ruleset(ruleset, CompileOptions(max_rules_per_router=100_000_000,
                                                        max_groups_per_rule=1 << 14)).totals()
    merged: set[tuple[str, str, str]] = set()   # exact cover, equal (prefix, action) merged across interfaces
    for r in ruleset.rules:
        nets = [ipaddress.ip_network(p) for p in r.prefixes]
        inside = "accept" if r.kind is ListKind.ALLOW else str(r.action.mode)
        merged.update((str(n), inside, "") for n in exact_cover(nets))
        if r.kind is ListKind.ALLOW:
            merged.update((f"default/{v}", str(r.action.mode), "") for v in {n.version for n in nets})
    print(f"engine rule set ({info['paths']:,} paths): {len(ruleset.rules)} interfaces, {distinct} distinct "
          f"lists, {listed:,} listed prefixes (built and computed in {t_engine:.1f}s)")
    print(f"exact CIDR cover per interface: {totals.exact_cover:,} rules; emitted: {totals.emitted:,} = "
          f"{totals.emitted / max(totals.exact_cover, 1):.4f} of it (compile {t_compile:.1f}s)")
    print(f"exact cover merged across interfaces: {len(merged):,} rules; emitted without the 256-group "
          f"split: {unbounded.emitted:,} = {unbounded.emitted / max(len(merged), 1):.3f} of it")
    bench_incremental(ruleset)


def bench_incremental(ruleset: SavRuleSet, runs: int = 5) -> None:
    """One interface's list loses a prefix: recompile with a warm TableCache and diff, vs a cold compile."""
    options = CompileOptions(max_rules_per_router=100_000_000)
    cache = TableCache()
    t = time.monotonic()
    before = compile_ruleset(ruleset, options, cache=cache)
    cold = time.monotonic() - t
    lists = [r for r in ruleset.rules if len(r.prefixes) > 1]
    times = []
    for i in range(runs):
        target = lists[(i * 7919) % len(lists)]
        changed = dataclasses.replace(target, prefixes=target.prefixes[1:])
        new = SavRuleSet.of([changed if r.key() == target.key() else r for r in ruleset.rules])
        t = time.monotonic()
        after = compile_ruleset(new, options, cache=cache)
        change = diff(before.rules(), after.rules())
        times.append(time.monotonic() - t)
    print(f"incremental: one list changed -> recompile + diff {statistics.median(times) * 1000:.0f} ms "
          f"median (max {max(times) * 1000:.0f} ms, last diff {len(change.announce)} announce / "
          f"{len(change.withdraw)} withdraw) vs cold compile {cold * 1000:.0f} ms = "
          f"{statistics.median(times) / cold:.2f}x")


def bench_incremental_efp(quick: bool, runs: int = 7) -> None:
    """Compiler.compile vs compile_ruleset (warm TableCache) after one change, EFP-uRPF B rule set."""
    import engine_bench  # bench/ is sys.path[0]

    from appliance.engine.policy import Algorithm, Policy
    from appliance.engine.snapshot import compute
    from appliance.flowspec.incremental import Compiler

    args = argparse.Namespace(paths=100_000 if quick else 1_000_000, vrps=60_000 if quick else 600_000,
                              customers=1000, aspa_every=20)
    if not engine_bench.REL.exists():
        print(f"skip: {engine_bench.REL} not present")
        return
    snap, info = engine_bench.build(args)
    ruleset = compute(dataclasses.replace(snap, policy=Policy(default_algorithm=Algorithm.EFP_B)))
    options = CompileOptions(max_rules_per_router=100_000_000)
    cache, compiler = TableCache(), Compiler(options)
    t = time.perf_counter()
    plan = compiler.compile(ruleset)
    first = time.perf_counter() - t
    compile_ruleset(ruleset, options, cache=cache)
    print(f"EFP-B rule set ({info['paths']:,} paths): {len(ruleset.rules)} interfaces, "
          f"{sum(len(r.prefixes) for r in ruleset.rules):,} listed prefixes, {len(plan.rules()):,} rules; "
          f"first compile {first * 1000:.0f} ms")
    big = [r for r in ruleset.rules if len(r.prefixes) > 1]
    shared = big[0].prefixes

    def one_rule(i: int) -> SavRuleSet:
        target = big[(i * 7919) % len(big)]
        drop = target.prefixes[:i + 1] + target.prefixes[i + 2:]
        return SavRuleSet(tuple(dataclasses.replace(r, prefixes=drop) if r is target else r
                                for r in ruleset.rules))

    def shared_list(i: int) -> SavRuleSet:
        drop = shared[:i + 1] + shared[i + 2:]
        return SavRuleSet(tuple(dataclasses.replace(r, prefixes=drop) if r.prefixes is shared else r
                                for r in ruleset.rules))

    def nothing(i: int) -> SavRuleSet:
        return SavRuleSet(tuple(dataclasses.replace(r) for r in ruleset.rules))

    print("change                      incremental  warm compile_ruleset  ratio  prefixes re-merged")
    for name, make in (("nothing changed", nothing), ("one interface's list", one_rule),
                       ("the shared list (1,000 ifs)", shared_list)):
        inc, full, merged = [], [], 0
        for i in range(runs):
            new = make(i)
            for rs in (new, ruleset):   # there and back: every run is one change from the state before
                t = time.perf_counter()
                got = compiler.compile(rs)
                inc.append(time.perf_counter() - t)
                merged = max(merged, compiler.merged_prefixes)
                t = time.perf_counter()
                want = compile_ruleset(rs, options, cache=cache)
                full.append(time.perf_counter() - t)
                if got != want:
                    raise SystemExit(f"MISMATCH: incremental plan differs ({name})")
        mi, mf = statistics.median(inc), statistics.median(full)
        print(f"{name:27} {mi * 1000:8.2f} ms  {mf * 1000:13.0f} ms  {mf / mi:6.0f}x  {merged}", flush=True)


async def _pipeline_once(sp: GoBgpSpeaker, rules: list[FlowRule], how: str) -> float:
    await sp.withdraw_all()
    t0 = time.perf_counter()
    if how == "bare":
        paths = [path_message(to_path(r)) for r in rules]

        async def requests() -> AsyncIterator[Any]:
            for i in range(0, len(paths), 1000):
                yield api.AddPathStreamRequest(table_type=api.GLOBAL, paths=paths[i:i + 1000])

        await sp._stub.AddPathStream(requests())
    else:
        pusher = FlowPusher(sp, pipeline_depth=1 if how == "serial" else None)
        await pusher.session_up("peer")
        await pusher.push("peer", rules)
    elapsed = time.perf_counter() - t0
    if await sp.count_paths(1) != len(rules):
        raise SystemExit(f"MISMATCH: gobgpd holds {await sp.count_paths(1)} of {len(rules)} ({how})")
    return elapsed


def bench_pipeline(sizes: list[int], runs: int = 3) -> None:
    import tempfile

    async def run() -> None:
        with tempfile.TemporaryDirectory(prefix="savd-gobgp-") as tmp:
            sp = GoBgpSpeaker(Path(tmp), asn=SPEAKER_AS, router_id=SPEAKER_ADDR)
            await sp.start()
            try:
                print("rules     bare stream  pusher serial (ratio)  pusher pipelined (ratio)")
                for n in sizes:
                    rules = synthetic_rules(n)
                    times: dict[str, list[float]] = {"bare": [], "serial": [], "pipelined": []}
                    for _ in range(runs):   # interleaved, so load drifts hit all three alike
                        for how in times:
                            times[how].append(await _pipeline_once(sp, rules, how))
                    med = {k: statistics.median(v) for k, v in times.items()}
                    bare = med["bare"]
                    print(f"{n:<9} {bare:8.3f} s  {med['serial']:8.3f} s ({med['serial'] / bare:.2f}x)"
                          f"  {med['pipelined']:8.3f} s ({med['pipelined'] / bare:.2f}x)", flush=True)
            finally:
                await sp.stop()

    asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="all",
                    choices=["push", "compress", "engine", "incremental", "pipeline", "all"])
    ap.add_argument("--quick", action="store_true", help="engine: 100k paths instead of 1M")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--speakers", default="gobgp,exabgp")
    ap.add_argument("--interfaces", type=int, default=16)
    args = ap.parse_args()
    if args.what in ("compress", "all"):
        bench_compress(args.interfaces)
    if args.what in ("engine", "all"):
        bench_engine(args.quick)
    if args.what in ("incremental", "all"):
        bench_incremental_efp(args.quick)
    if args.what == "pipeline":
        bench_pipeline([int(s) for s in args.sizes.split(",")])
    if args.what in ("push", "all"):
        bench_push([int(s) for s in args.sizes.split(",")], args.speakers.split(","))


if __name__ == "__main__":
    main()
