"""RTR full-sync benchmark: our client vs a plain rtrlib 0.8 client, same cache, same run.

    .venv/bin/python bench/rpki_bench.py [--aspas 2000] [--limit N] [--runs 3]

Data: ~640k VRPs from the CAIDA RouteViews pfx2as tables in ../shared/data (one VRP per prefix and
origin, maxLength = prefix length; synthetic 10.x/24s in 100.64.0.0/10 style space when the data set is
absent) plus `--aspas` synthetic ASPAs. Two sources:
  (a) StayRTR 0.5.1 on loopback: the realistic case, but StayRTR needs ~2 s and ~100k writes to send
      600k VRPs, which hides the clients' own cost;
  (b) a replay server that answers a Reset Query with a full sync captured from that StayRTR in this run
      (RTR v1 for rtrlib, v1 and v2 for ours), in one write.
Each client runs in a fresh child process; printed: seconds from connect to End of Data applied (ours:
published in the tables; rtrlib: rtr_mgr in sync), the child's peak RSS, the ratio ours / rtrlib, and
for StayRTR the CPU seconds StayRTR itself spent on that sync (of the best run): on a 2-core VM it depends
on the client (see bench/README.md, "RPKI").
For ours also "ready to validate": the sync plus the ROV index the first validate() builds (issue 13),
against rtrlib's sync (its table answers as soon as it is in sync), from the same best-of run.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.model import Aspa, Vrp
from rpki import rtrlib
from rpki.localcache import LocalStayRtr, write_stayrtr_json
from rpki.rtr.manager import RtrManager
from rpki.rtr.session import CacheConfig
from rpki.tables import RpkiTables

PFX2AS = Path(__file__).resolve().parents[2] / "shared" / "data" / "bgp-routes" / "caida-pfx2as"


# --- data --------------------------------------------------------------------------------------------


def load_vrps() -> list[Vrp]:
    files = sorted(PFX2AS.glob("routeviews-rv*-*.pfx2as.gz"))
    if not files:
        return [Vrp(f"{10 + i // 65536}.{i // 256 % 256}.{i % 256}.0/24", 24, 64512 + i % 1000)
                for i in range(600_000)]
    out: dict[tuple[str, int], Vrp] = {}
    for path in files:
        with gzip.open(path, "rt") as fh:
            for line in fh:
                addr, plen, origins = line.split()
                first = origins.replace(",", "_").split("_")[0]
                if not first.isdigit():
                    continue
                prefix = f"{addr}/{plen}"
                out[(prefix, int(first))] = Vrp(prefix, int(plen), int(first))
    return list(out.values())


def synthetic_aspas(n: int) -> list[Aspa]:
    rng = random.Random(4)
    return [Aspa(65536 + i, tuple(sorted(rng.sample(range(1, 65000), rng.randint(1, 4))))) for i in range(n)]


# --- capture and replay ------------------------------------------------------------------------------


def capture(port: int, version: int) -> bytes:
    """One full sync from the cache, raw, up to and including End of Data."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(bytes((version, 2, 0, 0, 0, 0, 0, 8)))
        buf = bytearray()
        offset = 0
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise RuntimeError("cache closed during capture")
            buf += chunk
            while len(buf) - offset >= 8:
                length = int.from_bytes(buf[offset + 4 : offset + 8], "big")
                if len(buf) - offset < length:
                    break
                if buf[offset + 1] == 7:
                    return bytes(buf[: offset + length])
                offset += length


class ReplayServer:
    """Answers a Reset Query of version v with captures[v] in one sendall; then idles."""

    def __init__(self, captures: dict[int, bytes]) -> None:
        self.captures = captures
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                while True:
                    query = conn.recv(64)
                    if not query:
                        return
                    if query[1] == 2 and query[0] in self.captures:
                        conn.sendall(self.captures[query[0]])
            except OSError:
                return

    def close(self) -> None:
        self._stop = True
        self.sock.close()


# --- children ----------------------------------------------------------------------------------------


def child_native(port: int, version: int) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        tables = RpkiTables()
        manager = RtrManager([CacheConfig("127.0.0.1", port, max_version=version)], tables)
        start = time.perf_counter()
        await manager.start()
        ok = await manager.wait_synced(120)
        elapsed = time.perf_counter() - start
        counts = tables.counts()
        await manager.stop()
        return {"ok": ok, "sync_s": elapsed, "vrps": counts["vrp"], "aspas": counts["aspa"],
                "tables": tables}

    result = asyncio.run(main())
    result["peak_rss_kib"] = rtrlib.peak_rss_kib()
    tables = result.pop("tables")
    start = time.perf_counter()
    tables.validate("198.18.0.0/24", 65001)  # builds the ROV index on first use
    result["rov_index_s"] = time.perf_counter() - start
    result["rov_peak_rss_kib"] = rtrlib.peak_rss_kib()
    return result


def run_child(kind: str, port: int, version: int) -> dict[str, Any]:
    if kind == "rtrlib":
        r = rtrlib.sync_once("127.0.0.1", port, timeout_s=120)
        return {"ok": True, "sync_s": r.sync_s, "vrps": len(r.vrps), "aspas": 0,
                "peak_rss_kib": r.peak_rss_kib}
    out = subprocess.run([sys.executable, __file__, "--child", str(port), str(version)], capture_output=True,
                         text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def server_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of the cache process so far (0 for the in-process replay server)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def best_of(runs: int, kind: str, port: int, version: int, server: int | None = None) -> dict[str, Any]:
    results = []
    for _ in range(runs):
        before = server_cpu_s(server)
        result = run_child(kind, port, version)
        result["server_cpu_s"] = server_cpu_s(server) - before
        results.append(result)
    best = min(results, key=lambda r: r["sync_s"])
    best["median_s"] = statistics.median(r["sync_s"] for r in results)
    return best


def report(label: str, r: dict[str, Any], base: dict[str, Any] | None) -> None:
    ratio = ""
    if base:
        ratio = (f"  ratio {r['sync_s'] / base['sync_s']:.2f}x time, "
                 f"{r['peak_rss_kib'] / base['peak_rss_kib']:.2f}x RSS")
    server = f"  cache CPU {r['server_cpu_s']:.2f} s" if r.get("server_cpu_s") else ""
    print(f"  {label:<22} {r['sync_s']:6.2f} s (median {r['median_s']:.2f})  peak RSS "
          f"{r['peak_rss_kib'] / 1024:6.1f} MiB  vrps {r['vrps']} aspas {r['aspas']}{ratio}{server}")
    if "rov_index_s" in r:
        print(f"  {'':<22} then the first validate() builds the ROV index: {r['rov_index_s']:.2f} s, "
              f"peak RSS {r['rov_peak_rss_kib'] / 1024:.1f} MiB")
        ready = r["sync_s"] + r["rov_index_s"]
        vs = f" = {ready / base['sync_s']:.2f}x rtrlib's sync (target <= 0.7x)" if base else ""
        print(f"  {'':<22} ready to validate (sync + index): {ready:.2f} s{vs}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--aspas", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N VRPs")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("PORT", "VERSION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_native(int(args.child[0]), int(args.child[1]))))
        return 0
    if not rtrlib.available():
        print("rpki_bench: rtrlib binding not built (scripts/build.d/20-rtrlib.sh)", file=sys.stderr)
        return 1
    vrps = load_vrps()
    if args.limit:
        vrps = vrps[: args.limit]
    aspas = synthetic_aspas(args.aspas)
    print(f"RPKI full sync: {len(vrps)} VRPs, {len(aspas)} ASPAs, best of {args.runs} runs per client")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vrps.json"
        write_stayrtr_json(path, vrps, aspas)
        with LocalStayRtr(path, refresh_s=3600, start_timeout_s=180) as cache:
            print("(a) from StayRTR 0.5.1")
            pid = cache.proc.pid if cache.proc else None
            base = best_of(args.runs, "rtrlib", cache.port, 1, pid)
            report("rtrlib 0.8 (RTR v1)", base, None)
            report("savd (RTR v1)", best_of(args.runs, "native", cache.port, 1, pid), base)
            report("savd (RTR v2 + ASPA)", best_of(args.runs, "native", cache.port, 2, pid), base)
            captures = {1: capture(cache.port, 1), 2: capture(cache.port, 2)}
        replay = ReplayServer(captures)
        try:
            print(f"(b) from a replay server (captured full sync: v1 {len(captures[1]) >> 20} MiB, "
                  f"v2 {len(captures[2]) >> 20} MiB, one write)")
            base = best_of(args.runs, "rtrlib", replay.port, 1)
            report("rtrlib 0.8 (RTR v1)", base, None)
            report("savd (RTR v1)", best_of(args.runs, "native", replay.port, 1), base)
            report("savd (RTR v2 + ASPA)", best_of(args.runs, "native", replay.port, 2), base)
        finally:
            replay.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
