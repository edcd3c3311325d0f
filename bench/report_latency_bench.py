"""Daemon-side latency of a report: API POST -> the FlowSpec rule handed to the speaker (no lab).

    .venv/bin/python bench/report_latency_bench.py [--installed 10000] [--samples 30] [--paths 20000]
                                                   [--border]

A `Daemon` with the real API (uvicorn, loopback), store, journal and incremental engine
(`engine_from_config`), `[timers] recompute_debounce_s` 0.2, and a FlowSpec delivery to four routers
through FlowPushers whose speaker is a recorder (it timestamps the announce carrying the new prefix).
State: 4 routers as in bench/recompute_bench.py with `--paths` paths, plus `--installed` reports (/30s
that do not aggregate) so the routers hold about that many FlowSpec rules. Each sample POSTs one new
report (a lone change, 0.3 s after the previous one settled) and measures until the speaker has it.
Baselines in the same run: the POST's own round trip (201 received), and the same daemon with the fixed
debounce it had before (every change waited `recompute_debounce_s`). Then a burst: 20 POSTs at once,
with the number of recomputes they cost and the time until the last is handed over. The router,
enforcer and nftables part of the path (bench/enforcer_bench.py: ~60 ms median) needs the lab.
`--one-list` puts every report and the probe on r0 lan0, as the lab bench (report_e2e_lab.py) does on r1
eth1, so each change grows one ~10k-entry allowlist; `--profile` prints a cProfile of the event loop's
thread over the samples. `--border` makes r3 a border router: its 8 external interfaces then carry the
border blocklist (every report, ~10k entries each), which every report change updates; the probe then
times the announce to r3 (the new blocklist entry).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import ipaddress
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from recompute_bench import state  # bench/ is sys.path[0]

from appliance.config import parse_config
from appliance.context import DaemonContext
from appliance.daemon import Daemon, engine_from_config
from appliance.flowspec.compiler import CompileOptions
from appliance.flowspec.rules import FlowRule
from appliance.model import PrefixReport, Role, Router
from appliance.recompute import RecomputeTimer
from appliance.speakers.pusher import FlowPusher, FlowSpecDelivery
from appliance.state import Announce
from appliance.state.facts import Fact
from rpki.localcache import free_port

TOKEN = "bench-latency-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROUTERS = ("r0", "r1", "r2", "r3")


class Recorder:
    """A FlowSpeaker that notes when each source prefix was first announced."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.calls = 0
        self.peer: str | None = None  # only this peer's announces count (None: any)

    async def announce(self, peer: str, rules: Sequence[FlowRule]) -> None:
        self.calls += 1
        now = time.perf_counter()
        if self.peer is not None and peer != self.peer:
            return
        for r in rules:
            self.seen.setdefault(r.match.source, now)

    async def withdraw(self, peer: str, rules: Sequence[FlowRule]) -> None:
        self.calls += 1


class Delivery:
    """Component: FlowSpec delivery of every router to a recording speaker, sessions up."""

    name = "flowspec-recorder"

    def __init__(self) -> None:
        self.speaker = Recorder()
        self.recomputes = 0

    async def start(self, ctx: DaemonContext) -> None:
        pusher = FlowPusher(self.speaker)
        # a border router's blocklist on 8 interfaces is ~8x the reports: over the default guardrail
        delivery = FlowSpecDelivery({r: [(pusher, f"peer-{r}")] for r in ROUTERS},
                                    CompileOptions(max_rules_per_router=1_000_000))
        for r in ROUTERS:
            await pusher.session_up(f"peer-{r}")

        async def on_rules(version: int, new: object, old: object) -> None:
            self.recomputes += 1
            await delivery.on_rules(version, new, old)  # type: ignore[arg-type]

        ctx.on_rules(on_rules)

    async def stop(self) -> None:
        return None


def report_prefix(i: int) -> str:
    """/30s four addresses apart in 100.64.0.0/10: neighbours never merge into one rule."""
    return str(ipaddress.IPv4Network((int(ipaddress.IPv4Address("100.64.0.0")) + i * 8, 30)))


def with_border(facts: list[Fact]) -> list[Fact]:
    """r3 as a border router (its eth0-7 are external with eBGP neighbours in recompute_bench.state)."""
    return [dataclasses.replace(f, role=Role.BORDER) if isinstance(f, Router) and f.name == "r3" else f
            for f in facts]


async def until(probe: Delivery, prefix: str, deadline_s: float = 30.0) -> float:
    end = time.perf_counter() + deadline_s
    while prefix not in probe.speaker.seen:
        if time.perf_counter() > end:
            raise SystemExit(f"{prefix} never reached the speaker")
        await asyncio.sleep(0.0005)
    return probe.speaker.seen[prefix]


async def run_daemon(args: argparse.Namespace, fixed: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="savd-latency-") as tmp:
        os.environ["SAVD_BENCH_TOKEN"] = TOKEN
        config = parse_config(
            f'[appliance]\nasn = 65000\nrouter_id = "198.18.20.10"\ndata_dir = "{tmp}"\n'
            f'[api]\nlisten = "127.0.0.1:{free_port()}"\ntoken_env = "SAVD_BENCH_TOKEN"\n'
            "[timers]\nrecompute_debounce_s = 0.2\n", Path(tmp) / "savd.toml")
        daemon = Daemon(config)
        daemon.set_engine(engine_from_config(config))
        probe = Delivery()
        if args.border:
            probe.speaker.peer = "peer-r3"
        daemon.add(probe)
        if fixed:   # the loop as it was: every change waited the whole debounce
            daemon_timer = RecomputeTimer.delay
            RecomputeTimer.delay = lambda self, now_s: self.debounce_s  # type: ignore[method-assign]
        task = asyncio.create_task(daemon.run())
        while not daemon.ready.is_set():
            await asyncio.sleep(0.01)
        assert daemon.ctx is not None and daemon.api_address is not None
        facts = [*(with_border(state(args.paths)) if args.border else state(args.paths)),
                 *(PrefixReport(*((ROUTERS[0], "lan0") if args.one_list else (ROUTERS[i % 4], f"lan{i % 5}")),
                                report_prefix(i)) for i in range(args.installed))]
        daemon.ctx.store.apply(Announce("api", tuple(facts)))
        t0 = time.perf_counter()
        await until(probe, report_prefix(args.installed - 1), 300)
        loaded = time.perf_counter() - t0
        post, handed = [], []
        base = args.installed + 10
        profiler = cProfile.Profile() if args.profile and not fixed else None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.api_address[1]}") as client:
            for i in range(args.samples):
                await asyncio.sleep(0.3)
                prefix = report_prefix(base + i)
                body = {"router": "r0", "interface": "lan0" if args.one_list else "lan9", "prefix": prefix}
                if profiler:
                    profiler.enable()
                t = time.perf_counter()
                resp = await client.post("/api/v1/reports", json=body, headers=AUTH)
                post.append(time.perf_counter() - t)
                if resp.status_code != 201:
                    raise SystemExit(f"POST refused: {resp.status_code} {resp.text}")
                handed.append(await until(probe, prefix) - t)
                if profiler:
                    profiler.disable()
            if profiler:
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            await asyncio.sleep(0.5)
            before = probe.recomputes
            burst = [report_prefix(base + args.samples + i) for i in range(20)]
            t = time.perf_counter()
            await asyncio.gather(*(client.post("/api/v1/reports", headers=AUTH,
                                               json={"router": "r1", "interface": "lan9", "prefix": p})
                                   for p in burst))
            last = max([await until(probe, p) for p in burst]) - t
            await asyncio.sleep(0.5)
            burst_recomputes = probe.recomputes - before
        daemon.stop()
        await asyncio.wait_for(task, 30)
        if fixed:
            RecomputeTimer.delay = daemon_timer  # type: ignore[method-assign]
        return {"post": post, "handed": handed, "burst_last": last, "burst_recomputes": burst_recomputes,
                "loaded": loaded, "rules": len(probe.speaker.seen)}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--installed", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--paths", type=int, default=20_000)
    ap.add_argument("--border", action="store_true", help="r3 is a border router (8 external interfaces)")
    ap.add_argument("--one-list", action="store_true",
                    help="all reports and the probe on r0 lan0: each change grows a ~10k-entry allowlist")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile the event loop's thread over the adaptive run's samples")
    args = ap.parse_args()
    results = {}
    for name, fixed in (("fixed debounce (before)", True), ("adaptive", False)):
        results[name] = asyncio.run(run_daemon(args, fixed))
    post = results["adaptive"]["post"]
    assert isinstance(post, list)
    base = statistics.median(post)
    print(f"installed: ~{results['adaptive']['rules']} FlowSpec rules handed to the speaker over 4 routers; "
          f"{args.paths} paths; {args.samples} samples")
    print(f"baseline: POST round trip median {base * 1000:.1f} ms, p95 {pct(post, 0.95) * 1000:.1f} ms")
    for name, res in results.items():
        handed = res["handed"]
        assert isinstance(handed, list)
        med, p95 = statistics.median(handed), pct(handed, 0.95)
        print(f"{name:24} POST -> handed to speaker: median {med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms "
              f"({med / base:.1f}x the POST); burst of 20: {res['burst_recomputes']} recomputes, last handed "
              f"after {float(str(res['burst_last'])) * 1000:.0f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
