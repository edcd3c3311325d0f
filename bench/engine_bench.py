"""Engine at Internet scale: full recompute, peak RSS, incremental latency, against a bare py-radix baseline.

Inputs (../shared/data): CAIDA AS relationships (Jan 2023), the RouteViews prefix-to-AS tables (IPv4 + IPv6)
as the routed prefixes. The validating router belongs to a real transit AS with at least 1,000 direct
customers in the CAIDA data; 1,000 of them become customer interfaces. Each prefix originated inside a
customer's cone is announced on that customer's interface along the CAIDA provider chain; the AS's providers
and peers send full tables (AS_PATH: neighbour, a CAIDA provider of the origin, origin) until the router
holds --paths paths (default 1,000,000). VRPs: one per (prefix, origin) up to --vrps (default 600,000).
ASPAs: every AS whose number is divisible by --aspa-every (default 20, about 5 %) signs one listing its CAIDA
providers. Policy: the default (`auto`).

Baseline: inserting the same path prefixes into a bare py-radix tree, in the same process. Times are process
CPU seconds (the build machine is shared; wall time is noisier); latencies are wall time. Reported: full
recompute (`decide`: every interface's list), cold (building the VRP/ASPA indexes too) and warm (RPKI
unchanged since the previous run: its indexes and memoised ROV answers reused), and the incremental
engine's build (`Engine(snapshot)`, run first, with the peak RSS right after it), with their ratio to the
baseline; peak RSS of the whole run; single-path change latency (`Engine.apply`,
withdraw then re-announce random paths), median and p99; a 10-VRP delta. Materialising the full
SavRuleSet (1,000 interfaces x the shared list, with provenance) is not part of these figures.

    .venv/bin/python bench/engine_bench.py [--paths 1000000] [--vrps 600000] [--changes 2000] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import gzip
import random
import resource
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import radix

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.engine.incremental import Engine, PathAdded, PathRemoved, RpkiChanged  # noqa: E402
from appliance.engine.loader import load_as_rel  # noqa: E402
from appliance.engine.relationships import AsRelationships, aspas_from  # noqa: E402
from appliance.engine.snapshot import Snapshot, decide  # noqa: E402
from appliance.model import BgpPath, Interface, Neighbor, Relationship, Role, Router, Vrp  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
REL = DATA / "as-relationships/caida-serial-1/20230101.as-rel.txt.bz2"
PFX2AS = [
    DATA / "bgp-routes/caida-pfx2as/routeviews-rv2-20160202-1200.pfx2as.gz",
    DATA / "bgp-routes/caida-pfx2as/routeviews-rv6-20160202-1200.pfx2as.gz",
]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    """Reset the kernel's peak RSS of this process (VmHWM, which ru_maxrss reads too: keep the peak from
    before the reset apart). False off Linux."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_since_reset_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return rss_mib()


def read_pfx2as() -> list[tuple[str, int]]:
    """(prefix, origin) pairs; MOAS keeps the first origin, AS-sets are skipped."""
    out: list[tuple[str, int]] = []
    for path in PFX2AS:
        with gzip.open(path, "rt") as fh:
            for line in fh:
                addr, length, origin = line.split()
                first = origin.split("_")[0]
                if "," in first:
                    continue
                out.append((f"{addr}/{length}", int(first)))
    return out


def pick_transit(rels: AsRelationships, customers: int) -> int:
    """The AS with the fewest direct customers among those with at least `customers` (deterministic)."""
    candidates = sorted((len(c), asn) for asn, c in rels.customers.items() if len(c) >= customers)
    return candidates[0][1]


def chains(rels: AsRelationships, root: int) -> dict[int, tuple[int, ...]]:
    """For every AS in root's customer cone, one provider chain root -> ... -> AS (BFS, lowest ASN first)."""
    out: dict[int, tuple[int, ...]] = {root: (root,)}
    frontier = [root]
    while frontier:
        nxt = []
        for asn in frontier:
            for c in sorted(rels.customers.get(asn, ())):
                if c not in out:
                    out[c] = (*out[asn], c)
                    nxt.append(c)
        frontier = nxt
    return out


def build(args: argparse.Namespace) -> tuple[Snapshot, dict[str, float]]:
    t0 = time.perf_counter()
    rels = load_as_rel(REL)
    table = read_pfx2as()
    local = pick_transit(rels, args.customers)
    customers = sorted(rels.customers[local])[: args.customers]
    uplinks = sorted(rels.providers.get(local, ())) + sorted(rels.peers.get(local, ()))[:20]
    neighbors = [Neighbor("b1", f"c{asn}", asn, Relationship.CUSTOMER) for asn in customers]
    neighbors += [
        Neighbor("b1", f"u{asn}", asn, rels.relationship(local, asn) or Relationship.PEER) for asn in uplinks
    ]
    origin_via: dict[int, tuple[str, tuple[int, ...]]] = {}
    for c in customers:
        for asn, chain in chains(rels, c).items():
            origin_via.setdefault(asn, (f"c{c}", chain))
    paths: list[BgpPath] = []
    for prefix, origin in table:
        via = origin_via.get(origin)
        if via is not None:
            paths.append(BgpPath("b1", via[0], prefix, via[1]))
    full_tables = [n for n in neighbors if n.relationship is not Relationship.CUSTOMER]
    k = 0
    while len(paths) < args.paths and k < len(full_tables):
        n = full_tables[k]
        for prefix, origin in table:
            if len(paths) >= args.paths:
                break
            if origin == n.asn:
                as_path: tuple[int, ...] = (n.asn,)
            else:
                ups = rels.providers.get(origin)
                mid = min(ups) if ups else None
                as_path = (n.asn, mid, origin) if mid not in (None, n.asn, origin) else (n.asn, origin)
            paths.append(BgpPath("b1", n.interface, prefix, as_path))
        k += 1
    vrps = tuple(Vrp(p, int(p.rsplit("/", 1)[1]), o) for p, o in table[: args.vrps])
    all_asns = set(rels.customers) | set(rels.providers) | set(rels.peers)
    aspas = tuple(aspas_from(rels, (a for a in all_asns if a % args.aspa_every == 0 or a in customers[::10])))
    snap = Snapshot(
        routers=(Router("b1", asn=local, role=Role.BORDER),),
        interfaces=tuple(Interface("b1", n.interface, external=True) for n in neighbors),
        neighbors=tuple(neighbors),
        paths=tuple(paths),
        vrps=vrps,
        aspas=aspas,
    )
    info = {
        "local_as": local,
        "customers": len(customers),
        "uplinks": len(uplinks),
        "paths": len(paths),
        "customer_paths": sum(1 for p in paths if p.interface.startswith("c")),
        "vrps": len(vrps),
        "aspas": len(aspas),
        "load_s": time.perf_counter() - t0,
    }
    return snap, info


def baseline(paths: tuple[BgpPath, ...]) -> float:
    t0 = time.process_time()
    tree = radix.Radix()
    for p in paths:
        tree.add(p.prefix)
    elapsed = time.process_time() - t0
    del tree
    return elapsed


def changes(snap: Snapshot, n: int, seed: int) -> Iterator[BgpPath]:
    rnd = random.Random(seed)
    for _ in range(n):
        yield snap.paths[rnd.randrange(len(snap.paths))]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paths", type=int, default=1_000_000)
    ap.add_argument("--vrps", type=int, default=600_000)
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--aspa-every", type=int, default=20)
    ap.add_argument("--changes", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="100k paths, 60k VRPs, 200 changes (smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.paths, args.vrps, args.changes = 100_000, 60_000, 200
    if not REL.exists():
        print(f"engine bench: {REL} not found (needs ../shared/data)", file=sys.stderr)
        return 2
    snap, info = build(args)
    gc.collect()
    gc.freeze()  # the inputs are long-lived: keep the cyclic GC from rescanning them (as the daemon would)
    print(
        f"input: AS{info['local_as']} with {info['customers']} customer and {info['uplinks']} provider/peer "
        f"interfaces; {info['paths']:,} paths ({info['customer_paths']:,} from customers), "
        f"{info['vrps']:,} VRPs, {info['aspas']:,} ASPAs; built in {info['load_s']:.1f} s; "
        f"RSS {rss_mib():.0f} MiB"
    )
    gc.collect()
    base = baseline(snap.paths)
    print(f"baseline: {len(snap.paths):,} prefixes into a bare py-radix tree: {base:.2f} s")

    peak_before = rss_mib()  # input build and baseline included
    own_peak = reset_peak()  # the baseline's tree may peak above the engine's own build: measure apart too
    t0 = time.process_time()
    engine = Engine(snap)
    build_s = time.process_time() - t0
    build_rss = max(peak_before, rss_mib())
    engine_peak = f"; the build's own peak {peak_since_reset_mib():.0f} MiB" if own_peak else ""
    print(
        f"incremental engine build: {build_s:.2f} s = {build_s / base:.2f}x baseline (target <= 3x); "
        f"peak RSS after it {build_rss:.0f} MiB, inputs included (target <= 600 MiB){engine_peak}"
    )

    lat: list[float] = []
    touched: list[int] = []
    for p in changes(snap, args.changes, args.seed):
        for event in (PathRemoved(p), PathAdded(p)):
            t0 = time.perf_counter()
            keys = engine.apply(event)
            lat.append(time.perf_counter() - t0)
            touched.append(len(keys))
    med, p99 = statistics.median(lat) * 1e3, percentile(lat, 0.99) * 1e3
    print(
        f"incremental: {len(lat)} single-path changes, median {med:.3f} ms, p99 {p99:.3f} ms, "
        f"max {max(lat) * 1e3:.1f} ms; interfaces touched median {statistics.median(touched):.0f}, "
        f"max {max(touched)}"
    )
    rnd = random.Random(args.seed)
    vrp_lat: list[float] = []
    for _ in range(5):
        gone = tuple(rnd.sample(snap.vrps, 10))
        moved = tuple(Vrp(v.prefix, v.max_length, v.asn + 1) for v in gone)
        t0 = time.perf_counter()
        engine.apply(RpkiChanged(vrps_added=moved, vrps_removed=gone))
        vrp_lat.append(time.perf_counter() - t0)
    print(f"VRP delta (10 VRPs re-originated, ASPAs unchanged): median {statistics.median(vrp_lat):.2f} s")
    del engine
    gc.collect()

    t0 = time.process_time()
    rpki = snap.rpki()
    decisions = decide(snap, rpki)
    cold = time.process_time() - t0
    del decisions
    gc.collect()
    t0 = time.process_time()
    decisions = decide(snap, rpki)  # RPKI unchanged: its indexes are reused, as between path-driven runs
    full = time.process_time() - t0
    kinds: dict[str, int] = {}
    for d in decisions.values():
        kinds[d.algorithm] = kinds.get(d.algorithm, 0) + 1
    sizes = sorted(len(d.prefixes) for d in decisions.values())
    print(f"full recompute, cold (incl. VRP/ASPA indexes): {cold:.2f} s = {cold / base:.2f}x baseline")
    print(
        f"full recompute, warm RPKI indexes: {full:.2f} s = {full / base:.2f}x baseline; "
        f"{len(decisions)} interfaces "
        f"{dict(sorted(kinds.items()))}; list sizes median {sizes[len(sizes) // 2]:,} max {sizes[-1]:,}"
    )
    del decisions, rpki
    gc.collect()
    run_peak = max(peak_before, rss_mib())
    print(f"peak RSS: {run_peak:.0f} MiB")
    ok = full <= 2 * base and med < 1.0 and run_peak < 1024
    verdict = "met" if ok else "NOT met"
    print(f"targets (full <= 2x baseline, incremental median < 1 ms, RSS < 1 GiB): {verdict}")
    ok13 = build_s <= 3 * base and build_rss <= 600
    verdict13 = "met" if ok13 else "NOT met"
    print(f"issue 13 targets (Engine() <= 3x baseline, peak RSS after it <= 600 MiB): {verdict13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
