"""State store benchmarks: journalled apply, restart restore (replay and checkpoint), snapshot build.

    .venv/bin/python bench/state_bench.py [--sizes 10000,50000] [--batch 500] [--changes 20]

Facts are VRPs (synthetic /48s in 2001:db8::/32, plus the AFRINIC ROA archive from ../shared/data when
present), announced by one source in batches, as an RTR cache delivers them. Baselines are measured in
the same run: the same changes applied to a store without a journal. Printed: facts/s and the ratio to
that baseline (apply: the journal's cost; restore: replay from SQLite vs applying in memory).

Snapshot after one change: one VRP announced or withdrawn, then `snapshot()` (median of `--changes`),
against a rebuild of the changed kind from scratch as the store did before it patched snapshots (sort
the whole table, one frozenset per fact), timed on the same facts in the same run, both with the cyclic
garbage collector off (its passes depend on what else the heap holds, which skewed the comparison).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.model import Vrp
from appliance.state import Announce, Journal, StateStore, Withdraw
from appliance.state.facts import FACT_KINDS, Fact
from appliance.state.store import _KEYS

AFRINIC = (Path(__file__).resolve().parents[2] / "shared" / "data" / "rpki" / "ripe-archive-afrinic"
           / "roas.afrinic.2021-12-31.csv")


def synthetic(n: int) -> list[Vrp]:
    return [Vrp(f"2001:db8:{i:x}::/48", 48, 64512 + i % 1000) for i in range(n)]


def afrinic() -> list[Vrp]:
    from rpki.files import load

    return list(load(AFRINIC).vrp_records())


def changes(vrps: list[Vrp], batch: int) -> list[Announce]:
    return [Announce("rtr:bench", tuple(vrps[i:i + batch])) for i in range(0, len(vrps), batch)]


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def full_rebuild(kind: str, table: Mapping[Fact, frozenset[str]]) -> tuple[tuple[Fact, ...], Any]:
    """One kind's part of a snapshot built from scratch (the store's way until it patched them)."""
    return (tuple(sorted(table, key=_KEYS[FACT_KINDS[kind]])),
            MappingProxyType({f: frozenset(s) for f, s in table.items()}))


def one_change(store: StateStore, rounds: int) -> tuple[float, float]:
    """Median seconds of snapshot() after one VRP announced or withdrawn, and of the full rebuild."""
    patched, rebuilt = [], []
    for i in range(rounds):
        vrp = Vrp(f"2001:db8:ffff:{i // 2:x}::/64", 64, 64999)  # announced, then withdrawn
        store.apply((Withdraw if i % 2 else Announce)("rtr:one", (vrp,)))
        gc.collect()  # both sides timed without the collector: its passes depend on the rest of the heap
        gc.disable()
        t0 = time.perf_counter()
        snap = store.snapshot()
        t1 = time.perf_counter()
        gc.enable()
        table = {f: frozenset(s) for f, s in snap.sources["vrp"].items()}  # untimed: the old live table
        gc.collect()
        gc.disable()
        t2 = time.perf_counter()
        rebuilt_kind = full_rebuild("vrp", table)
        t3 = time.perf_counter()
        gc.enable()
        assert rebuilt_kind[0] == snap.vrps, "patched snapshot differs from a full sort"
        del rebuilt_kind, table  # freed outside the timing, as the store frees an old snapshot in apply()
        patched.append(t1 - t0)
        rebuilt.append(t3 - t2)
    return statistics.median(patched), statistics.median(rebuilt)


def run(name: str, vrps: list[Vrp], batch: int, rounds: int) -> None:
    todo = changes(vrps, batch)
    n = len(vrps)
    base = StateStore(checkpoint_every=10**9)
    t_base = timed(lambda: [base.apply(c) for c in todo])
    with tempfile.TemporaryDirectory() as tmp:
        with Journal.open(Path(tmp)) as journal:
            store = StateStore(journal, checkpoint_every=10**9)
            t_apply = timed(lambda: [store.apply(c) for c in todo])
            t_snap = timed(store.snapshot)
            t_one, t_full = one_change(base, rounds)
        with Journal.open(Path(tmp)) as journal:
            holder: list[StateStore] = []
            t_replay = timed(lambda: holder.append(StateStore.restore(journal)))
            assert holder[0].snapshot().vrps == store.snapshot().vrps
            t_ckpt_write = timed(holder[0].checkpoint)
        with Journal.open(Path(tmp)) as journal:
            t_ckpt = timed(lambda: StateStore.restore(journal))
        size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20
    print(f"{name}: {n} VRPs in {len(todo)} changes, journal {size:.1f} MiB")
    print(f"  apply in memory (baseline)  {n / t_base:10.0f} facts/s")
    print(f"  apply + SQLite journal      {n / t_apply:10.0f} facts/s   ratio {t_base / t_apply:.2f}")
    print(f"  restore by replay           {n / t_replay:10.0f} facts/s   ratio {t_base / t_replay:.2f}")
    print(f"  checkpoint write            {t_ckpt_write:10.2f} s")
    print(f"  restore from checkpoint     {n / t_ckpt:10.0f} facts/s   ratio {t_base / t_ckpt:.2f}")
    print(f"  snapshot build              {t_snap:10.3f} s")
    print(f"  kind rebuilt whole (before) {t_full * 1000:10.3f} ms  after one change, median of {rounds}")
    print(f"  snapshot after one change   {t_one * 1000:10.3f} ms   ratio {t_full / t_one:.1f}x faster")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--changes", type=int, default=20, help="single-VRP changes for the snapshot figure")
    args = parser.parse_args()
    if AFRINIC.exists():
        run("AFRINIC ROAs 2021-12-31", afrinic(), args.batch, args.changes)
    for size in (int(s) for s in args.sizes.split(",")):
        run(f"synthetic {size}", synthetic(size), args.batch, args.changes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
