"""State store benchmarks: journalled apply, restart restore (replay and checkpoint), snapshot build.

    .venv/bin/python bench/state_bench.py [--sizes 10000,50000] [--batch 500]

Facts are VRPs (synthetic /48s in 2001:db8::/32, plus the AFRINIC ROA archive from ../shared/data when
present), announced by one source in batches, as an RTR cache delivers them. Baselines are measured in
the same run: the same changes applied to a store without a journal. Printed: facts/s and the ratio to
that baseline (apply: the journal's cost; restore: replay from SQLite vs applying in memory).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.model import Vrp
from appliance.state import Announce, Journal, StateStore

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


def run(name: str, vrps: list[Vrp], batch: int) -> None:
    todo = changes(vrps, batch)
    n = len(vrps)
    base = StateStore(checkpoint_every=10**9)
    t_base = timed(lambda: [base.apply(c) for c in todo])
    with tempfile.TemporaryDirectory() as tmp:
        with Journal.open(Path(tmp)) as journal:
            store = StateStore(journal, checkpoint_every=10**9)
            t_apply = timed(lambda: [store.apply(c) for c in todo])
            t_snap = timed(store.snapshot)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    if AFRINIC.exists():
        run("AFRINIC ROAs 2021-12-31", afrinic(), args.batch)
    for size in (int(s) for s in args.sizes.split(",")):
        run(f"synthetic {size}", synthetic(size), args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
