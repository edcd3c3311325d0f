"""`savd demo`: the whole appliance on the sav-basic lab (or `--lab sav-inter`), end to end, and a verdict.

Brings containerlab/sav-basic up with real FRR in network namespaces (prefix `svdemo`) on what `savd lab
init` makes of it (the routers' own frr.conf plus the appliance parts, from the topology's savd.* labels),
starts StayRTR with init's RPKI file, a savd-enforcer on every router (FRR's FlowSpec -> nftables), and
`savd run` with init's savd.toml (this run's ports) as a subprocess (killed by PID at the end). savd
learns the topology over BGP-LS from the routers' exporters, the subnets' prefixes from init's reports
file, computes the SAV rules and pushes them as FlowSpec to r1..r4. Once every router's enforcer has
them in nftables, real legitimate and spoofed packets (IPv4 and IPv6) are sent and counted at the
receiver. Exit code 0 only when every spoofed packet was dropped and every legitimate one delivered.

`--lab sav-inter` does the same for inter-domain SAV on containerlab/sav-inter (prefix `svinter`) with
configs/demo-inter.toml: savd learns the ASBRs' eBGP paths over BMP, ROAs and ASPAs over RTR v2, and pushes
EFP-uRPF / BAR-SAV rules to b1..b3; the traffic is run twice, with the RPKI data and with none (fail open).
`DemoLab` holds what differs between the labs (`LABS`).

`Appliance` (start/stop savd, enforcers and StayRTR around a running Lab) and `Flow`/`send_flow` are
reused by the lab tests that drive `savd run` (tests/lab/test_run_*.py, test_demo*.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import ExternalError
from appliance.lab.cli import default_topology
from appliance.lab.errors import LabError
from appliance.lab.kit.enforcers import EnforcerPaths, start_enforcer
from appliance.lab.kit.flows import Flow, report, send_flow, send_flows
from appliance.lab.kit.labels import KitPlan, read_plan
from appliance.lab.kit.render import SPEAKERS, KitOptions, write_savd_files
from appliance.lab.kit.render import vrps as kit_vrps
from appliance.lab.netns import list_netns
from appliance.lab.runner import Lab
from appliance.lab.traffic import rx_counter
from appliance.model import Aspa, Vrp
from appliance.shipped import PACKAGE_ROOT, shipped
from appliance.speakers.holdover import processes_naming, reap
from rpki.localcache import LocalStayRtr, free_port, write_stayrtr_json

REPO = PACKAGE_ROOT  # PYTHONPATH of the savd and savd-enforcer children
# What `savd lab init containerlab/sav-basic/sav-basic.clab.yml --prefix svdemo [--speaker gobgp]` writes
# as savd.toml, committed for reading and `savd config check` (tests/unit/lab/test_lab_kit_init.py keeps
# them equal to init's output); the demo itself runs on init's output.
TEMPLATE = shipped("configs/demo.toml")
TEMPLATES = {"exabgp": TEMPLATE, "gobgp": shipped("configs/demo-gobgp.toml")}  # FlowSpec speaker -> config
PREFIX = "svdemo"
ROUTERS = ("r1", "r2", "r3", "r4")
WORKDIR = Path("/tmp/savd-demo")


INTER_PREFIX = "svinter"
INTER_VRPS = (  # ROAs for part of the ASes: none for AS 65025 (behind c2) and the lateral peer AS 65030
    Vrp("198.18.0.0/16", 24, 65000),
    Vrp("2001:db8::/48", 64, 65000),
    Vrp("198.19.16.0/20", 24, 65010),
    Vrp("2001:db8:10::/48", 64, 65010),
    Vrp("198.19.32.0/20", 24, 65020),
    Vrp("2001:db8:20::/48", 64, 65020),
    Vrp("198.19.80.0/20", 24, 65040),
    Vrp("2001:db8:40::/48", 64, 65040),
)
INTER_ASPAS = (  # ASPAs for all but AS 65025 and the lateral peer AS 65030
    Aspa(65010, (65000,)),
    Aspa(65020, (65000,)),
    Aspa(65000, (65040,)),
    Aspa(65040, (0,)),  # AS0: the provider has no provider (it stands for the top of the Internet)
)


@dataclass(frozen=True)
class DemoLab:
    """What the demo (and the lab tests driving `savd run`) need to know about one lab; see `LABS`."""

    name: str
    topology: Path
    templates: Mapping[str, Path]      # FlowSpec speaker -> savd configuration (none for a kit lab)
    prefix: str                        # namespace prefix the configurations name (netns = "<prefix>-ctl")
    workdir: Path
    routers: tuple[str, ...]           # FlowSpec peers, each with a savd-enforcer
    peers: Mapping[str, str]           # FlowSpec peer address -> router
    flows: Callable[..., tuple[Flow, ...]]
    vrps: tuple[Vrp, ...]
    aspas: tuple[Aspa, ...] = ()
    rtr_version: int = 1
    asn: int = 65000
    bgpls: tuple[str, ...] = ()        # routers savd must have learned over BGP-LS before rules count
    min_paths: int = 0                 # BGP paths (BMP) savd must hold before rules count
    without_rpki: bool = False         # also run the traffic with the RPKI data gone (fail open)
    stayrtr_args: tuple[str, ...] = ()
    parallel: bool = False             # send the flows in parallel (send_flows)
    notes: tuple[str, ...] = field(default=())
    kit: bool = False                  # savd.toml, reports and RPKI data from `savd lab init` (run time)

    @property
    def speakers(self) -> tuple[str, ...]:
        """FlowSpec speakers the lab can run with (`savd demo --speaker`)."""
        return SPEAKERS if self.kit else tuple(sorted(self.templates))


class DemoError(ExternalError, RuntimeError):
    """A step of the demo failed; the message says which and why."""


def wait_until(what: str, probe: Callable[[], Any], timeout_s: float, interval_s: float = 0.25) -> Any:
    """Poll `probe` until it returns something truthy; DemoError naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (OSError, ValueError, LabError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval_s)
    raise DemoError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


def runtime_config(template: Path, out: Path, *, prefix: str, data_dir: Path, api_port: int,
                   rtr_port: int, template_prefix: str = PREFIX) -> Path:
    """configs/demo.toml made concrete for one run: lab prefix, data dir, API and RTR ports, reports path."""
    text = template.read_text()
    text = text.replace(f'"{template_prefix}-', f'"{prefix}-')
    text = re.sub(r'(?m)^data_dir = .*$', f'data_dir = "{data_dir}"', text)
    # the [api] listener (the first loopback `listen`; a later one, e.g. [collaboration]'s, keeps its port)
    text = re.sub(r'(?m)^listen = "127\.0\.0\.1:\d+"', f'listen = "127.0.0.1:{api_port}"', text, count=1)
    text = re.sub(r'(?m)^port = 8282$', f"port = {rtr_port}", text)
    text = re.sub(r'(?m)^file = "([^"/]+)"', lambda m: f'file = "{template.parent / m.group(1)}"', text)
    out.write_text(text)
    return out


class Appliance:
    """savd run + StayRTR + one savd-enforcer per router around a running Lab (sav-basic unless `profile`
    says otherwise); `stop()` ends every process it started, by PID.

    savd's configuration: `template` made concrete for the run (`runtime_config`) when given; else, for a
    kit lab (sav-basic), the savd.toml `savd lab init` writes for the lab's topology and prefix with this
    run's API and RTR ports, data_dir and FlowSpec `speaker`; else the profile's exabgp template. StayRTR
    serves init's ROAs (rpki.json) on a kit lab, the profile's VRPs otherwise."""

    def __init__(self, lab: Lab, workdir: Path, template: Path | None = None,
                 env: dict[str, str] | None = None, profile: DemoLab | None = None,
                 speaker: str = "exabgp") -> None:
        self.profile = profile or LABS["sav-basic"]
        if template is None and not self.profile.kit:
            template = self.profile.templates[speaker]
        self.lab, self.workdir, self.template, self.speaker = lab, workdir, template, speaker
        self.data_dir = workdir / "data"
        self.token = secrets.token_hex(16)
        self.api_port = free_port()
        self.env = env or {}
        self.stayrtr: LocalStayRtr | None = None
        self.enforcers: dict[str, subprocess.Popen[bytes]] = {}
        self.savd: subprocess.Popen[bytes] | None = None
        self.config: Path | None = None
        self.last_check: dict[str, Any] = {}
        self.vrp_count = 0

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    # --- processes -----------------------------------------------------------------------------------

    def kit_plan(self) -> KitPlan:
        """`savd lab init`'s reading of the lab's labelled topology (kit labs)."""
        return read_plan(self.lab.kit_source or self.lab.topology)

    def start_stayrtr(self, vrps: Sequence[Vrp] | None = None, aspas: Sequence[Aspa] | None = None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cache_file = self.workdir / "rpki.json"
        if vrps is None:
            vrps = kit_vrps(self.kit_plan()) if self.profile.kit else self.profile.vrps
        write_stayrtr_json(cache_file, vrps, self.profile.aspas if aspas is None else aspas)
        self.vrp_count = len(vrps)
        self.stayrtr = LocalStayRtr(cache_file, refresh_s=1, protocol=self.profile.rtr_version,
                                    extra_args=self.profile.stayrtr_args,
                                    log_path=self.workdir / "stayrtr.log")
        self.stayrtr.start()

    def set_rpki(self, vrps: Sequence[Vrp], aspas: Sequence[Aspa] = ()) -> None:
        """Replace what the running StayRTR serves (it re-reads its file every second)."""
        if self.stayrtr is None:
            raise DemoError("start StayRTR first")
        write_stayrtr_json(self.stayrtr.cache_file, vrps, aspas)

    def start_enforcers(self, routers: Sequence[str] | None = None) -> None:
        """One savd-enforcer per router, as `savd lab enforcers up` starts them (appliance.lab.kit)."""
        routers = self.profile.routers if routers is None else routers
        os.chmod(self.workdir, 0o755)
        for router in routers:
            paths = EnforcerPaths(groups_file=self.data_dir / "enforcer-groups" / f"{router}.json",
                                  workdir=self.workdir / f"enforcer-{router}",
                                  log=self.workdir / f"enforcer-{router}.log")
            self.enforcers[router] = start_enforcer(self.lab, router, self.profile.asn, paths)

    def start_savd(self) -> None:
        """`savd run --config <init's savd.toml, or the template made concrete>` as a subprocess."""
        if self.stayrtr is None:
            raise DemoError("start StayRTR first")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.template is None:
            opts = KitOptions(prefix=self.lab.prefix, api_port=self.api_port, rtr_port=self.stayrtr.port,
                              rtr_version=self.profile.rtr_version, data_dir=str(self.data_dir),
                              speaker=self.speaker)
            self.config = write_savd_files(self.kit_plan(), self.workdir / "kit", opts)[0]
        else:
            self.config = runtime_config(self.template, self.workdir / "savd.toml", prefix=self.lab.prefix,
                                         data_dir=self.data_dir, api_port=self.api_port,
                                         rtr_port=self.stayrtr.port, template_prefix=self.profile.prefix)
        env = dict(os.environ, SAVD_API_TOKEN=self.token, PYTHONPATH=str(REPO), **self.env)
        argv = [sys.executable, "-m", "appliance.cli", "run", "--config", str(self.config)]
        with (self.workdir / "savd.log").open("ab") as log:
            self.savd = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        wait_until("savd's API", lambda: self.savd_alive() and self.get("/health"), 30)

    def start_on_converged_lab(self, timeout_s: float = 90.0) -> dict[str, int]:
        """Bring the lab up and converged, start StayRTR, the enforcers and savd, and wait until the rules
        are active (as `rules_active`); DemoError with the last check on timeout."""
        self.lab.up()
        self.lab.wait_converged(timeout_s=timeout_s)
        self.start_stayrtr()
        self.start_enforcers()
        self.start_savd()
        try:
            installed: dict[str, int] = wait_until(
                "rules active", lambda: self.savd_alive() and self.rules_active(), timeout_s, 0.5)
        except DemoError as exc:
            raise DemoError(f"{exc}; last check: {self.last_check}; alarms: {self.alarm_summary()}") from exc
        return installed

    def alarm_summary(self) -> list[str]:
        """savd's active alarms, a line each (what a timeout report should show); [] if it cannot tell."""
        try:
            alarms = self.get("/api/v1/alarms").get("alarms", [])
        except (OSError, ValueError):
            return []
        return [f"{a.get('type')}: {str(a.get('message'))[:200]}" for a in alarms if isinstance(a, dict)][:10]

    def savd_alive(self) -> bool:
        if self.savd is None or self.savd.poll() is not None:
            tail = self.log_tail("savd.log")
            raise DemoError(f"savd is not running (exit {self.savd.returncode if self.savd else None}):\n"
                            f"{tail}")
        return True

    def kill_savd(self, sig: int = signal.SIGKILL) -> None:
        if self.savd is not None and self.savd.poll() is None:
            self.savd.send_signal(sig)
            try:
                self.savd.wait(20)
            except subprocess.TimeoutExpired:
                self.savd.kill()
                self.savd.wait(5)
        self.savd = None

    def stop(self) -> None:
        """Stop savd (SIGTERM), the enforcers and StayRTR, each by PID; kill what does not go."""
        self.kill_savd(signal.SIGTERM)
        for proc in self.enforcers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.enforcers.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.enforcers = {}
        if self.stayrtr is not None:
            self.stayrtr.stop()
            self.stayrtr = None
        reap(self.data_dir / "speakers")  # speakers a SIGKILLed savd left in holdover

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / name
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # --- HTTP ----------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        code, doc = self.request("GET", path)
        if code != 200:
            raise ValueError(f"GET {path}: HTTP {code}: {doc}")
        return doc

    def enforcer(self, router: str, path: str = "/status") -> dict[str, Any]:
        code = ("import sys,urllib.request;sys.stdout.write(urllib.request.urlopen("
                f"'http://127.0.0.1:9180{path}',timeout=10).read().decode())")
        proc = self.lab.exec(router, [sys.executable, "-c", code])
        if proc.returncode != 0:
            raise ValueError(f"{router}: enforcer {path} not answering: {proc.stderr.strip()[-200:]}")
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc

    def installed(self, router: str) -> int:
        """Rules the router's enforcer holds in nftables; the others are noted in `last_check`."""
        rules = self.enforcer(router, "/counters")["rules"]
        others = [f"{r.get('state')}: {r.get('nlri')} ({r.get('reason')})" for r in rules
                  if r["state"] != "installed"]
        self.last_check.setdefault("listed", {})[router] = len(rules)   # fewer than pushed: FRR's doing
        if others:
            self.last_check.setdefault("not_installed", {})[router] = others[:5]
        return sum(1 for r in rules if r["state"] == "installed")

    def pushed(self) -> dict[str, int]:
        """Rules savd holds as pushed, per router (from the API's FlowSpec view)."""
        doc = self.get("/api/v1/flowspec")
        return _pushed_counts(doc, self.profile.peers)

    def rules_active(self, learned_routers: Sequence[str] | None = None) -> dict[str, int] | None:
        """Per router, the rules installed in nftables, once savd learned every router over BGP-LS (and
        the lab's BGP paths over BMP), computed rules from its latest state, pushed rules to every router
        that has SAV rules, and every router's nftables holds exactly what savd pushed to it; else None."""
        learned_routers = self.profile.bgpls if learned_routers is None else learned_routers
        topo = self.get("/api/v1/topology")
        rules = self.get("/api/v1/rules")
        learned = {r.get("name") for r in topo.get("routers", []) if isinstance(r, dict)}
        self.last_check = {"routers_learned": sorted(map(str, learned)), "state_version": topo["version"],
                           "rules_version": rules.get("version"), "paths": topo.get("paths")}
        if not set(learned_routers) <= learned or rules.get("version") != topo["version"]:
            return None  # BGP-LS not synced yet, or rules not computed from the latest state
        if int(topo.get("paths") or 0) < self.profile.min_paths:
            return None  # BMP has not delivered every eBGP path yet
        with_rules = {r["router"] for r in _items(rules, "rules")
                      if isinstance(r, dict) and (r.get("kind") == "allow" or r.get("prefixes"))}
        pushed = self.pushed()
        self.last_check.update(pushed=pushed, routers_with_rules=sorted(with_rules))
        if not with_rules or any(pushed.get(r, 0) == 0 for r in with_rules):
            return None
        installed = {r: self.installed(r) for r in self.profile.routers}
        ok = all(installed.get(r, 0) == pushed.get(r, 0) for r in self.profile.routers)
        self.last_check.update(installed=installed)
        return installed if ok else None

    def rules_in_sync(self) -> dict[str, int] | None:
        """Per router, the rules installed in nftables once savd's rules are computed from its latest state
        and every router holds exactly what savd pushed to it, none included (all interfaces loose)."""
        topo, rules = self.get("/api/v1/topology"), self.get("/api/v1/rules")
        if rules.get("version") != topo["version"]:
            return None
        pushed = self.pushed()
        self.last_check = {"pushed": pushed}
        installed = {r: self.installed(r) for r in self.profile.routers}
        self.last_check.update(installed=installed)
        return installed if all(installed[r] == pushed.get(r, 0) for r in installed) else None

    def restart_under_traffic(self, flows: Sequence[Flow], sent: int = 1500) -> list[int]:
        """kill -9 savd and start it again while each flow sends `sent` packets at 200/s (1500: ~7.5 s,
        across the kill and the restart); the packets delivered, per flow. Give flows of one receiver, or
        replies (ICMP) of one flow may be counted as another's packets."""
        for f in flows:  # create the receiver's counters before the threads race to
            rx_counter(self.lab.netns(f.receiver), f.source)
        results = [0] * len(flows)

        def run(i: int, f: Flow) -> None:
            results[i] = send_flow(self.lab, f, count=sent, interval="u5000")

        threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(flows)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        self.kill_savd(signal.SIGKILL)
        time.sleep(1.0)
        self.start_savd()
        for t in threads:
            t.join(120)
        return results

    def verdicts_across_restart(self, sent: int = 1500) -> list[str]:
        """kill -9 and restart savd while every demo flow to h2, legitimate and spoofed, sends `sent`
        packets: the flows whose verdict did not hold throughout (a legitimate packet lost, a spoofed one
        delivered), as text; [] when every packet got its verdict."""
        flows = [f for f in demo_flows() if f.receiver == "h2"]  # one receiver: no reply counted as a flow
        delivered = self.restart_under_traffic(flows, sent)
        return [f"{f.label} from {f.source}: {n}/{sent} delivered"
                for f, n in zip(flows, delivered, strict=True) if n != (0 if f.spoofed else sent)]

    def log_since_restart(self) -> str:
        """savd.log from the last savd that opened its journal (`event=state-restored`) on."""
        log = (self.workdir / "savd.log").read_text()
        return log[log.rindex("event=state-restored"):]

    def speaker_pids(self) -> list[int]:
        """savd's speaker processes (ExaBGP, gobgpd, their guards and relays), alive with or without savd."""
        return _speaker_pids(self.data_dir)

    def rules_withdrawn(self) -> bool:
        """Fail open reached: no speaker of savd's left and no rule in any router's nftables."""
        return not self.speaker_pids() and all(self.installed(r) == 0 for r in self.profile.routers)

    def dropped(self, router: str) -> int:
        return sum(int(r.get("dropped_packets", 0)) for r in self.enforcer(router, "/counters")["rules"])


def _pushed_counts(doc: Any, peers: Mapping[str, str] | None = None) -> dict[str, int]:
    """{router: rules held} from GET /api/v1/flowspec, whatever its exact nesting (peers or routers)."""
    router_of_peer = ROUTER_OF_PEER if peers is None else peers
    out: dict[str, int] = {}
    held = doc.get("peers", doc) if isinstance(doc, dict) else doc
    items = held.items() if isinstance(held, dict) else ((p.get("peer", ""), p) for p in held or ())
    for peer, entry in items:
        router = router_of_peer.get(str(peer), str(peer))
        if isinstance(entry, dict):
            n = entry.get("held", entry.get("rules", entry.get("count", 0)))
        else:
            n = entry
        out[router] = out.get(router, 0) + (len(n) if isinstance(n, list | dict) else int(n or 0))
    return out


ROUTER_OF_PEER = {f"198.18.255.{i}": f"r{i}" for i in range(1, 5)}


def _speaker_pids(data_dir: Path) -> list[int]:
    """savd's speaker processes (guards, ExaBGP, relays, gobgpd) under `data_dir` (ours, nobody else's)."""
    return processes_naming(data_dir / "speakers")


# --- traffic -------------------------------------------------------------------------------------------


H1_DST = ("h1", "198.18.1.10", "2001:db8:0:1::10")
H2_DST = ("h2", "198.18.3.10", "2001:db8:0:3::10")


def demo_flows(count: int = 20) -> tuple[Flow, ...]:
    def f(label: str, sender: str, source: str, spoofed: bool, to: tuple[str, str, str] = H2_DST) -> Flow:
        return Flow(label, sender, source, to[0], to[2] if ":" in source else to[1], count, spoofed)

    return (
        f("h1 own P1 via r1", "h1", "198.18.1.10", False),
        f("h1 own P1 via r1", "h1", "2001:db8:0:1::10", False),
        f("h1 own P2 via r1 (multi-homed, r1 does not announce P2)", "h1", "198.18.2.10", False),
        f("h1 own P2 via r1 (multi-homed, r1 does not announce P2)", "h1", "2001:db8:0:2::10", False),
        f("h2 own prefix via r2", "h2", "198.18.3.10", False, H1_DST),
        f("h2 own prefix via r2", "h2", "2001:db8:0:3::10", False, H1_DST),
        f("Internet source via border r4", "inet", "198.19.1.10", False),
        f("Internet source via border r4", "inet", "2001:db8:100:1::10", False),
        f("h1 spoofs h2's prefix at access r1", "h1", "198.18.3.77", True),
        f("h1 spoofs h2's prefix at access r1", "h1", "2001:db8:0:3::77", True),
        f("h1 spoofs a foreign source at access r1", "h1", "198.19.7.7", True),
        f("h2 spoofs subnet 1's P1 at access r2", "h2", "198.18.1.77", True, H1_DST),
        f("h2 spoofs subnet 1's P1 at access r2", "h2", "2001:db8:0:1::77", True, H1_DST),
        f("Internet spoofs an internal source at border r4", "inet", "198.18.1.77", True),
        f("Internet spoofs an internal source at border r4", "inet", "2001:db8:0:1::77", True),
    )


INTER_SRV = ("srv", "198.18.40.10", "2001:db8:0:40::10")      # AS 65000's server: target and reflector
INTER_HLAT = ("hlat", "198.19.64.10", "2001:db8:30:1::10")    # behind the lateral peer AS 65030
INTER_HPROV = ("hprov", "198.19.80.10", "2001:db8:40:1::10")  # behind the provider AS 65040: the victim


def inter_flows(count: int = 20, rpki: bool = True, algorithm: str = "auto") -> tuple[Flow, ...]:
    """sav-inter's traffic classes (containerlab/sav-inter/README.md) and what each should get from the
    rules savd computes with the lab's RPKI data (`rpki`) or without any, under engine `algorithm`.

    - auto with RPKI data: a spoofed source is dropped where ROAs and ASPAs prove it outside the
      interface's customer cone; sources nothing proves (AS 65025 and the lateral peer AS 65030 hold no
      ROA or ASPA, 198.19.200.0/24 is in no ROA) pass: a hidden customer link cannot be excluded (fail open).
    - auto without RPKI data: loose uRPF everywhere, every spoofed class passes (fail open), but for
      AS 65000's own infrastructure (learned over BGP-LS), which its borders block whatever RPKI says.
    - efp-b (RFC 8704 EFP-uRPF algorithm B on customer interfaces) without RPKI data: every customer-side
      spoof is dropped, P1 included in b2's list since c1 does announce it there (NO_EXPORT).
    The provider-side spoof of a customer-cone source is stopped only by BAR-SAV-PI (RPKI data): it is
    left out without RPKI data."""
    auto = algorithm == "auto"

    def f(label: str, sender: str, source: str, spoofed: bool, to: tuple[str, str, str] = INTER_SRV,
          provable: bool = True, own: bool = False) -> Flow:
        passes = spoofed and auto and not own and (not rpki or not provable)
        return Flow(label, sender, source, to[0], to[2] if ":" in source else to[1], count, spoofed, passes)

    flows = [
        f("c1 P1 via b2 (NO_EXPORT there; b2 routes P1 via b1)", "h1", "198.19.16.10", False),
        f("c1 P1 via b2 (NO_EXPORT there; b2 routes P1 via b1)", "h1", "2001:db8:10:1::10", False),
        f("c1 Q1 via b2 to the provider's host", "h1", "198.19.17.10", False, INTER_HPROV),
        f("c1 Q1 via b2 to the provider's host", "h1", "2001:db8:10:2::10", False, INTER_HPROV),
        f("c1 P1 via b1 to the lateral peer's host", "h1", "198.19.16.10", False, INTER_HLAT),
        f("c1 P1 via b1 to the lateral peer's host", "h1", "2001:db8:10:1::10", False, INTER_HLAT),
        f("c2 P2 via b3", "h2", "198.19.32.10", False),
        f("c2 P2 via b3", "h2", "2001:db8:20:1::10", False),
        f("c3 P3 via c2 and b3 (customer cone)", "h3", "198.19.48.10", False),
        f("c3 P3 via c2 and b3 (customer cone)", "h3", "2001:db8:25:1::10", False),
        f("lateral peer's host via b1", "hlat", "198.19.64.10", False),
        f("lateral peer's host via b1", "hlat", "2001:db8:30:1::10", False),
        f("provider's host via b2", "hprov", "198.19.80.10", False),
        f("provider's host via b2", "hprov", "2001:db8:40:1::10", False),
        f("c2 spoofs c1's P1 at b3", "h2", "198.19.16.77", True),
        f("c2 spoofs c1's P1 at b3", "h2", "2001:db8:10:1::77", True),
        f("c2 spoofs the provider's prefix at b3", "h2", "198.19.80.77", True),
        f("reflection: c3 spoofs the victim hprov toward srv", "h3", "198.19.80.10", True),
        f("reflection: c3 spoofs the victim hprov toward srv", "h3", "2001:db8:40:1::10", True),
        f("direct attack from c3: AS 65000's own source", "h3", "198.18.40.77", True, own=True),
        f("direct attack from c3: AS 65000's own source", "h3", "2001:db8:0:40::77", True, own=True),
        f("direct attack from c3: c1's source", "h3", "198.19.17.77", True),
        f("c1 spoofs c2's P2 at b2", "h1", "198.19.32.77", True),
        f("c1 spoofs c2's P2 at b1", "h1", "198.19.32.78", True, INTER_HLAT),
        f("c1 spoofs c2's P2 at b1", "h1", "2001:db8:20:1::77", True, INTER_HLAT),
        f("direct attack from c3: lateral peer's source (no ROA/ASPA)", "h3", "198.19.64.77", True,
          provable=False),
        f("direct attack from c3: source in no ROA", "h3", "198.19.200.1", True, provable=False),
        f("c1 spoofs c3's P3 at b1 (AS 65025: no ROA/ASPA)", "h1", "198.19.48.77", True, INTER_HLAT,
          provable=False),
    ]
    if rpki:
        flows += [
            f("provider spoofs c1's Q1 at b2 (BAR-SAV-PI)", "hprov", "198.19.17.77", True),
            f("provider spoofs c1's Q1 at b2 (BAR-SAV-PI)", "hprov", "2001:db8:10:2::77", True),
        ]
    return tuple(flows)


REPO_LABS = shipped("containerlab")
LABS: dict[str, DemoLab] = {
    "sav-basic": DemoLab(
        name="sav-basic", topology=REPO_LABS / "sav-basic" / "sav-basic.clab.yml", templates={},
        prefix=PREFIX, workdir=WORKDIR, routers=ROUTERS, peers=ROUTER_OF_PEER, flows=demo_flows,
        vrps=(), bgpls=ROUTERS, kit=True),
    "sav-inter": DemoLab(
        name="sav-inter", topology=REPO_LABS / "sav-inter" / "sav-inter.clab.yml",
        templates={"exabgp": shipped("configs/demo-inter.toml")}, prefix=INTER_PREFIX,
        workdir=Path(f"{WORKDIR}-inter"), routers=("b1", "b2", "b3"),
        peers={f"198.18.255.{i}": f"b{i}" for i in range(1, 4)}, flows=inter_flows,
        vrps=INTER_VRPS, aspas=INTER_ASPAS, rtr_version=2, bgpls=("b1", "b2", "b3", "core"),
        min_paths=22,  # eBGP paths over BMP: b1 8 (c1 6, lat 2), b2 8 (c1 6, prov 2), b3 6 (c2)
        without_rpki=True, parallel=True,
        # StayRTR 0.5.1 with ASPAs bumps its serial at every file read (1 s) and notifies each time, also a
        # client still negotiating (version 0); savd skips such early notifies and keeps v2 (issue 12,
        # tests/integration/rpki test_early_serial_notify_keeps_v2_with_notifications_on). The 2 s refresh
        # is a second path for changes, besides the notifies.
        stayrtr_args=("-rtr.refresh", "2")),
}


# --- the command -----------------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo", help="the appliance end to end on a lab (sav-basic or sav-inter): rules pushed, spoofing "
                     "dropped",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    demo.add_argument("--lab", choices=sorted(LABS), default="sav-basic",
                      help="sav-basic (intra-domain, BGP-LS; default) or sav-inter (inter-domain: BMP paths, "
                           "ROAs and ASPAs over RTR v2, configs/demo-inter.toml)")
    demo.add_argument("--keep", action="store_true",
                      help="leave lab, savd, enforcers and StayRTR running (prints how to stop them)")
    demo.add_argument("--topo", type=Path, help="another topology file (default: the lab's own)")
    demo.add_argument("--prefix", default=None,
                      help=f"namespace prefix of the lab (default {PREFIX}, {INTER_PREFIX} for sav-inter; "
                           "another one runs a second demo)")
    demo.add_argument("--workdir", type=Path,
                      help=f"work files, emptied first (default {WORKDIR}[-PREFIX]; {WORKDIR}-inter[-PREFIX] "
                           "for sav-inter)")
    demo.add_argument("--speaker", choices=SPEAKERS, default="exabgp",
                      help="what pushes the FlowSpec to the routers: ExaBGP (default) or one gobgpd per "
                           "router (`savd lab init --speaker gobgp`; sav-basic only)")
    demo.add_argument("--timeout", type=float, default=120.0, metavar="S",
                      help="timeout for convergence and for rules becoming active")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    profile = LABS[getattr(args, "lab", "sav-basic")]
    if args.speaker not in profile.speakers:
        print(f"savd demo: --speaker {args.speaker} is not available for {profile.name} "
              f"(only {', '.join(profile.speakers)})", file=sys.stderr)
        return 2
    prefix = args.prefix or profile.prefix
    topo = args.topo or (default_topology() if profile.name == "sav-basic" else profile.topology)
    try:
        lab = Lab.load(topo, prefix=prefix)
    except LabError as exc:
        print(f"savd demo: {exc}", file=sys.stderr)
        return 1
    workdir = args.workdir or (profile.workdir if prefix == profile.prefix
                               else Path(f"{profile.workdir}-{prefix}"))
    if lab.directory.joinpath("state.json").exists():
        print(f"savd demo: lab {lab.name} with prefix {lab.prefix} is already running (stop it with "
              f"savd lab down --prefix {lab.prefix}, or run another demo with --prefix)", file=sys.stderr)
        return 1
    subprocess.run(["rm", "-rf", str(workdir)], check=False)
    workdir.mkdir(parents=True)
    app = Appliance(lab, workdir, profile=profile, speaker=args.speaker)
    ok = False
    t0 = time.monotonic()
    try:
        print(f"== savd demo: lab {lab.name} ({len(lab.topology.nodes)} nodes), real FRR in network "
              f"namespaces {lab.prefix}-*; work files in {workdir}")
        lab.up(detach=args.keep)
        waited = lab.wait_converged(timeout_s=args.timeout)
        print(f"== lab up and converged (OSPF, eBGP) in {time.monotonic() - t0:.1f} s "
              f"({waited:.1f} s waiting)")
        if lab.kit_dir is not None:
            print(f"== on `savd lab init`'s output for {topo} (the routers' frr.conf plus iBGP to the "
                  f"appliance, FlowSpec, BGP-LS exporters): {lab.kit_dir}")
        app.start_stayrtr()
        app.start_enforcers()
        aspas = f", {len(profile.aspas)} ASPAs over RTR v{profile.rtr_version}" if profile.aspas else ""
        print(f"== StayRTR on 127.0.0.1:{app.stayrtr.port if app.stayrtr else '?'} ({app.vrp_count} VRPs"
              f"{aspas}), savd-enforcer on {', '.join(profile.routers)}")
        t_savd = time.monotonic()
        app.start_savd()
        print(f"== savd run --config {app.config} (pid {app.savd.pid if app.savd else '?'}), API {app.api}, "
              f"FlowSpec pushed by {args.speaker}")
        installed = wait_until("rules active in every router's nftables",
                               lambda: app.savd_alive() and app.rules_active(), args.timeout, 0.5)
        t_active = time.monotonic() - t_savd
        print(f"== rules active {t_active:.1f} s after savd started ({time.monotonic() - t0:.1f} s after "
              "the demo started); FlowSpec rules installed in nftables per router:")
        rules = app.get("/api/v1/rules")
        print("   " + ", ".join(f"{r}: {n}" for r, n in sorted(installed.items())))
        for line in _rules_summary(rules):
            print("   " + line)
        print("== traffic (counted at the receiver):")
        flows = profile.flows()
        counts = send_flows(lab, flows) if profile.parallel else [send_flow(lab, f) for f in flows]
        results = list(zip(flows, counts, strict=True))
        lines, ok = report(results)
        print("\n".join(lines))
        if profile.without_rpki:
            ok = _without_rpki(app, profile, args.timeout) and ok
        time.sleep(1.5)
        print("== drops counted by the enforcers: "
              + ", ".join(f"{r}: {app.dropped(r)}" for r in profile.routers))
        alarms = app.get("/api/v1/alarms")
        spoof_alarms = [a for a in _items(alarms, "alarms") if "spoof" in json.dumps(a)]
        print(f"== savd alarms: {len(_items(alarms, 'alarms'))} raised ({len(spoof_alarms)} spoofing-seen)")
        print("== verdict: " + ("PASS: every spoofed packet dropped, no legitimate packet dropped" if ok
                                else "FAIL (see WRONG above)"))
    except (DemoError, LabError, OSError) as exc:
        print(f"savd demo: {exc}", file=sys.stderr)
        for name in ("savd.log",):
            print(f"--- {name} (last lines)\n{app.log_tail(name)}", file=sys.stderr)
        ok = False
    finally:
        if args.keep:
            procs = (app.savd, *app.enforcers.values(), app.stayrtr.proc if app.stayrtr else None)
            pids = [p.pid for p in procs if p is not None]
            print(f"== left running: lab {lab.prefix}-*, savd (pid {app.savd.pid if app.savd else '-'}), "
                  f"API {app.api}, token {app.token}\n"
                  f"   try:  SAVD_API_URL={app.api} SAVD_API_TOKEN={app.token} .venv/bin/savd api rules\n"
                  f"   stop: kill {' '.join(map(str, pids))}; .venv/bin/savd lab down --prefix {lab.prefix}")
        else:
            app.stop()
            lab.down()
            left = [n for n in list_netns() if n.startswith(lab.prefix + "-")]
            print(f"== torn down in total {time.monotonic() - t0:.1f} s: {len(left)} namespaces left, "
                  "savd, enforcers, StayRTR and FRR stopped")
    return 0 if ok else 1


def _without_rpki(app: Appliance, profile: DemoLab, timeout_s: float) -> bool:
    """The RPKI data withdrawn from StayRTR: savd recomputes (engine algorithm auto: loose uRPF on every
    interface, fail open) and the same traffic runs again, spoofed classes now expected to pass; True when
    every verdict held (above all: no legitimate packet dropped)."""
    before = app.get("/api/v1/rules")["version"]
    t0 = time.monotonic()
    app.set_rpki((), ())
    wait_until("rules recomputed without RPKI data",
               lambda: app.get("/api/v1/rules")["version"] != before and _no_rpki_rules(app), timeout_s, 0.5)
    wait_until("every router's nftables in sync with savd",
               lambda: app.savd_alive() and app.rules_in_sync(), timeout_s, 0.5)
    print(f"== RPKI data withdrawn from StayRTR: rules recomputed and active in "
          f"{time.monotonic() - t0:.1f} s:")
    for line in _rules_summary(app.get("/api/v1/rules")):
        print("   " + line)
    print("== traffic without RPKI data (counted at the receiver):")
    flows = profile.flows(rpki=False)
    results = list(zip(flows, send_flows(app.lab, flows), strict=True))
    lines, ok = report(results)
    print("\n".join(lines))
    return ok


def _no_rpki_rules(app: Appliance) -> bool:
    """Every rule computed without RPKI data (no BAR-SAV algorithm left in the rule set)."""
    rules = _items(app.get("/api/v1/rules"), "rules")
    return bool(rules) and not any("bar-sav" in str(r.get("algorithm", "")) for r in rules)


def _items(doc: Any, key: str) -> list[Any]:
    if isinstance(doc, dict):
        value = doc.get(key, [])
        return list(value) if isinstance(value, list) else []
    return list(doc) if isinstance(doc, list) else []


def _rules_summary(doc: Any) -> list[str]:
    """One line per (router, interface) rule from GET /api/v1/rules."""
    out = []
    for rule in _items(doc, "rules"):
        if not isinstance(rule, dict):
            continue
        prefixes = [str(p) for p in rule.get("prefixes") or []]
        mode = (rule.get("action") or {}).get("mode", "")
        shown = ", ".join(prefixes[:6]) + (f" (+{len(prefixes) - 6})" if len(prefixes) > 6 else "")
        out.append(f"{rule.get('router')}:{rule.get('interface')} {rule.get('kind')}list [{mode}] {shown}")
    return out
