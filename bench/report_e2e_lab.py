"""Report latency end to end in the sav-basic lab: API POST -> the rule active in the router's nftables.

    .venv/bin/python bench/report_e2e_lab.py [--installed 10000] [--samples 20] [--gap 0.3] [--trace]

What runs (nothing mocked; the same code as `savd demo` and tests/lab/test_run_sav_basic.py, through
`appliance.demo.Appliance`): containerlab/sav-basic with real FRR in namespaces `<prefix>-*` (a fresh
random prefix, `sv` + 4 hex digits), StayRTR, a savd-enforcer on r1..r4 and `savd run` with
configs/demo.toml made concrete for the run. Two changes to that configuration: the reports file is the
demo's plus `--installed` extra /32 sources on r1 eth1 (subnet "bench"), every other address of
198.18.128.0/18 and 198.18.192.0/19 (never two siblings, so ORTC keeps one FlowSpec rule per report), and
the FlowSpec guardrail (`max_rules_per_router`, 2,000 in the demo) is raised. r1 then holds an allowlist
of ~N rules on eth1 and the border r4 a blocklist of ~N rules on eth2 (every internal prefix), so each
router's nftables table holds ~N elements.

Each sample, `--gap` seconds after the previous one was active: POST one new report (a /32 from
198.18.224.0/20, away from the installed ones) on r1 eth1, and time until the prefix is *added* in the
nftables of r1 (its allowlist) and of r4 (its blocklist). Nothing is polled: `nft monitor` runs in each
router's namespace and the line carrying the prefix is timestamped when it arrives (one reader thread per
router, blocking reads). Baselines in the same run: the POST's own round trip (201 received), and the bare
`nft add element` of one /32 into a scratch interval set of the same size (its own namespace).

Before/after comparisons: run this file from two checkouts one after the other (e.g. `git archive` of
the previous commit, with appliance/speakers/gobgp_pb copied in); it imports `appliance` from the
checkout it lives in, and savd and the enforcers run from there too.

`--trace` adds where the time goes, per sample: `tcpdump` on BGP (port 179) in r1's namespace gives when
savd's UPDATE reached r1 (from ctl) and when r1's bgpd passed it on to the enforcer's ExaBGP (veth
`savd-fs-frr`); the enforcer log's `event=enforcer-applied` gives the nft transaction's own time.
Everything is torn down on exit, also on failure or Ctrl-C: savd, enforcers, StayRTR, monitors and
tcpdump by PID, then the lab (every process in its namespaces, namespaces, veths).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.demo import LABS, Appliance, DemoError
from appliance.lab.runner import Lab
from appliance.shipped import shipped

INSTALLED_SPACE = ("198.18.128.0/18", "198.18.192.0/19")  # installed reports: every other address
PROBE_SPACE = "198.18.224.0/20"                            # the samples' new reports
MAX_RULES = 1_000_000


def installed_prefixes(n: int) -> list[str]:
    """`n` /32s, two addresses apart: no two are siblings, so no two merge into one FlowSpec rule."""
    out: list[str] = []
    for space in INSTALLED_SPACE:
        net = ipaddress.IPv4Network(space)
        base = int(net.network_address)
        out.extend(f"{ipaddress.IPv4Address(base + 2 * i)}/32" for i in range(net.num_addresses // 2))
    if n > len(out):
        raise SystemExit(f"--installed {n}: at most {len(out)} fit in {', '.join(INSTALLED_SPACE)}")
    return out[:n]


def probe_prefix(i: int) -> str:
    """The i-th sample's report: a /32 sixteen addresses from the previous one."""
    return f"{ipaddress.IPv4Network(PROBE_SPACE).network_address + 16 * i + 6}/32"


def write_config(workdir: Path, installed: Sequence[str], log: str = "info") -> Path:
    """configs/demo.toml with the extra reports and the guardrail raised, as a template for
    `appliance.demo.runtime_config` (which resolves the reports file next to it)."""
    reports = shipped("configs/demo-reports.yaml").read_text()
    lines = "\n".join(f"      - {p}" for p in installed)
    reports += ('  - id: "bench"\n    prefixes:\n' + lines + "\n"
                "    attachments:\n      - {router: r1, interface: eth1}\n")
    (workdir / "bench-reports.yaml").write_text(reports)
    text = shipped("configs/demo.toml").read_text()
    text, n_file = re.subn(r'(?m)^file = "demo-reports\.yaml"$', 'file = "bench-reports.yaml"', text)
    text, n_max = re.subn(r"(?m)^max_rules_per_router = \d+$", f"max_rules_per_router = {MAX_RULES}", text)
    text, n_log = re.subn(r'(?m)^log = "info"$', f'log = "{log}"', text)
    if n_file != 1 or n_max != 1 or n_log != 1:
        raise SystemExit("configs/demo.toml changed: no [reports] file, max_rules_per_router or log line")
    template = workdir / "bench-template.toml"
    template.write_text(text)
    return template


def added_line(prefix: str) -> re.Pattern[str]:
    """An `nft monitor` line adding this /32 (printed as the bare address), not a longer address."""
    address = re.escape(prefix.removesuffix("/32"))
    return re.compile(rf"^add .*(?<![\d.]){address}(?![\d.])")


class NftMonitor:
    """`nft monitor` in one namespace; each line with its arrival time (monotonic), read by a thread."""

    def __init__(self, netns: str) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", netns, "nft", "monitor"],
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line))

    def wait(self, pattern: re.Pattern[str], timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DemoError(f"nft monitor: no line matching {pattern.pattern} within {timeout_s:.0f} s")
            try:
                at, line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if pattern.search(line):
                return at

    def drain(self) -> None:
        while not self.lines.empty():
            self.lines.get_nowait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@dataclass(frozen=True, slots=True)
class Packet:
    wall: float
    interface: str
    direction: str
    src: str
    dst: str
    length: int


TCPDUMP_LINE = re.compile(r"^(\d+\.\d+) (\S+)\s+(In|Out) +IP6? (\S+) > (\S+): .*(?:length|tcp) (\d+)")


@dataclass
class BgpTrace:
    """tcpdump of BGP (port 179) in one namespace: packets with payload, wall-clock timestamps."""

    netns: str
    proc: subprocess.Popen[str] | None = None
    packets: list[Packet] = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "tcpdump", "-i", "any", "-n", "-tt", "-l", "-q",
             "tcp port 179 and greater 80"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.5)

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            m = TCPDUMP_LINE.match(line)
            if m and int(m.group(6)) > 19:  # a BGP message longer than a KEEPALIVE
                self.packets.append(Packet(float(m.group(1)), m.group(2), m.group(3), m.group(4), m.group(5),
                                           int(m.group(6))))

    def first(self, after: float, interface_prefix: str, direction: str) -> float | None:
        for p in list(self.packets):
            if p.wall >= after and p.interface.startswith(interface_prefix) and p.direction == direction:
                return p.wall
        return None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


ENFORCER_APPLIED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*event=enforcer-applied .*seconds=([\d.]+)")


def enforcer_applies(log: Path) -> list[tuple[float, float]]:
    """(wall time the apply was logged, nft seconds) of each `event=enforcer-applied` line."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        m = ENFORCER_APPLIED.match(line)
        if m:
            at = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append((at, float(m.group(2))))
    return out


def bare_add_baseline(netns: str, size: int, samples: int) -> list[float]:
    """Bare `nft add element` of one /32 into an interval set of `size` elements (a scratch table)."""
    elements = ", ".join(installed_prefixes(size))
    text = ("table inet savd_base {\n"
            f" set s {{ type ipv4_addr; flags interval; counter; elements = {{ {elements} }} }}\n"
            " chain pre { type filter hook prerouting priority -300; policy accept;\n"
            "  ip saddr @s accept\n }\n}\n")
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=text, text=True, check=True)
    out = []
    for i in range(samples):
        t0 = time.monotonic()
        subprocess.run(["ip", "netns", "exec", netns, "nft", "add", "element", "inet", "savd_base", "s",
                        f"{{ {probe_prefix(i).removesuffix('/32')} }}"], check=True)
        out.append(time.monotonic() - t0)
    return out


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(values: Sequence[float]) -> str:
    return f"median {statistics.median(values) * 1000:6.1f} ms, p95 {pct(values, 0.95) * 1000:6.1f} ms"


@dataclass
class Sample:
    prefix: str
    post: float                 # POST round trip
    r1: float                   # POST sent -> added in r1's nftables
    r4: float                   # POST sent -> added in r4's nftables
    wall_sent: float
    stages: dict[str, float] = field(default_factory=dict)


def measure(app: Appliance, monitors: dict[str, NftMonitor], args: argparse.Namespace,
            trace: BgpTrace | None) -> list[Sample]:
    out = []
    for i in range(args.samples):
        time.sleep(args.gap)
        for m in monitors.values():
            m.drain()
        prefix = probe_prefix(i)
        pattern = added_line(prefix)
        body = {"router": "r1", "interface": "eth1", "prefix": prefix, "subnet": "bench"}
        wall, t0 = time.time(), time.monotonic()
        code, doc = app.request("POST", "/api/v1/reports", body)
        post = time.monotonic() - t0
        if code != 201:
            raise DemoError(f"POST {body}: HTTP {code}: {doc}")
        at = {r: m.wait(pattern, 30) for r, m in monitors.items()}
        out.append(Sample(prefix, post, at["r1"] - t0, at["r4"] - t0, wall))
        print(f"  {i:3} {prefix:18} POST {post * 1000:6.1f} ms  r1 {(at['r1'] - t0) * 1000:7.1f} ms  "
              f"r4 {(at['r4'] - t0) * 1000:7.1f} ms", flush=True)
    if trace is not None:
        time.sleep(1.0)
        applies = enforcer_applies(app.workdir / "enforcer-r1.log")
        for s in out:
            arrived = trace.first(s.wall_sent, "eth", "In")
            passed = trace.first(arrived, "savd-fs-frr", "Out") if arrived is not None else None
            applied = next(((at, sec) for at, sec in applies if passed is not None and at >= passed - 0.001),
                           None)
            if arrived is not None:
                s.stages["POST -> UPDATE at r1"] = arrived - s.wall_sent
            if arrived is not None and passed is not None:
                s.stages["r1 bgpd in -> out to the enforcer"] = passed - arrived
                s.stages["bgpd out -> active in r1's nftables"] = s.wall_sent + s.r1 - passed
            if applied is not None:
                s.stages["enforcer's nft transaction"] = applied[1]
    return out


def report(samples: Sequence[Sample], bare: Sequence[float], args: argparse.Namespace,
           load: tuple[float, ...], loaded_s: float, counts: dict[str, int]) -> None:
    post = [s.post for s in samples]
    r1, r4 = [s.r1 for s in samples], [s.r4 for s in samples]
    base_post, base_nft = statistics.median(post), statistics.median(bare)
    print(f"\n{datetime.date.today()}, load average at start {load[0]:.2f} / end {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} CPUs; rules installed per router {counts} ({loaded_s:.0f} s from savd start)")
    print(f"baseline POST round trip:                {ms(post)}")
    print(f"baseline bare nft add element ({args.installed} set): {ms(bare)}")
    for name, values in (("r1 (allowlist)", r1), ("r4 (blocklist)", r4)):
        med = statistics.median(values)
        print(f"POST -> active in {name} nftables:   {ms(values)}; median {med / base_post:.1f}x the POST, "
              f"{med / base_nft:.1f}x the bare add; target p95 <= 100 ms: "
              f"{'met' if pct(values, 0.95) <= 0.1 else 'NOT met'}")
    stages = sorted({k for s in samples for k in s.stages}, key=lambda k: list(samples[0].stages).index(k)
                    if k in samples[0].stages else 99)
    for key in stages:
        values = [s.stages[key] for s in samples if key in s.stages]
        print(f"  stage {key:40} {ms(values)} ({len(values)} samples)")


def run(args: argparse.Namespace) -> int:
    profile = LABS["sav-basic"]
    lab = Lab.load(profile.topology)  # a fresh random prefix: never an instance someone else runs
    workdir = Path(tempfile.mkdtemp(prefix=f"savd-e2e-{lab.prefix}-"))
    scratch = f"{lab.prefix}-scratch"
    template = write_config(workdir, installed_prefixes(args.installed), args.savd_log)
    app = Appliance(lab, workdir, template=template, profile=profile)
    monitors: dict[str, NftMonitor] = {}
    trace: BgpTrace | None = None
    load = os.getloadavg()
    print(f"== lab {lab.name} in namespaces {lab.prefix}-*, work files in {workdir}", flush=True)
    try:
        t0 = time.monotonic()
        counts = app.start_on_converged_lab(timeout_s=args.timeout)
        loaded = time.monotonic() - t0
        if min(counts["r1"], counts["r4"]) < args.installed:
            raise DemoError(f"expected >= {args.installed} rules on r1 and r4, got {counts}")
        print(f"== {counts} rules active in nftables {loaded:.0f} s after start", flush=True)
        if args.trace:
            trace = BgpTrace(lab.netns("r1"))
            trace.start()

        for router in ("r1", "r4"):
            monitors[router] = NftMonitor(lab.netns(router))
        time.sleep(1.0)
        samples = measure(app, monitors, args, trace)
        subprocess.run(["ip", "netns", "add", scratch], check=True)
        bare = bare_add_baseline(scratch, args.installed, args.samples)
        report(samples, bare, args, load, loaded, counts)
        return 0
    except (DemoError, OSError, subprocess.CalledProcessError) as exc:
        print(f"report_e2e_lab: {exc}", file=sys.stderr)
        for name in ("savd.log", "enforcer-r1.log"):
            print(f"--- {name} (last lines)\n{app.log_tail(name)}", file=sys.stderr)
        return 1
    finally:
        for m in monitors.values():
            m.close()
        if trace is not None:
            trace.close()
        app.stop()
        lab.down()
        subprocess.run(["ip", "netns", "del", scratch], check=False, stderr=subprocess.DEVNULL)
        if args.keep_workdir:
            print(f"== work files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Iterator[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--installed", type=int, default=10_000, help="extra reports, ~rules per router")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--gap", type=float, default=0.3, help="seconds between a sample's end and the next POST")
    ap.add_argument("--timeout", type=float, default=300.0, help="lab convergence and initial load, each")
    ap.add_argument("--trace", action="store_true", help="per-stage times (tcpdump in r1, enforcer log)")
    ap.add_argument("--keep-workdir", action="store_true", help="keep logs and configs after the run")
    ap.add_argument("--savd-log", default="info", choices=("debug", "info"),
                    help="savd's log level (debug: per-stage events in the kept savd.log)")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if os.geteuid() != 0:
        print("report_e2e_lab: needs root (network namespaces, FRR, nftables)", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
