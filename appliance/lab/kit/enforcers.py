"""One savd-enforcer per router of a running lab, in the router's namespace: the command line, starting
and stopping by PID. `savd lab enforcers up|down` and the demo (appliance/demo.py) both use it.

Each enforcer gets its own work directory (ExaBGP sidecar files) and log, reads the group mapping savd
writes to `<data_dir>/enforcer-groups/<router>.json`, configures FRR's FlowSpec feed itself
(`--configure-frr`) through the node's vtysh (`vtysh --vty_socket /var/run/frr/<prefix>-<router>`), and
answers HTTP on 127.0.0.1:9180 inside the namespace. `up` records the PIDs in `<root>/enforcers.json`
so that `down` from another process stops exactly those processes (checked against /proc first).
Must not touch nftables or FRR directly (the enforcer does).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Config
from appliance.lab.errors import LabError
from appliance.lab.runner import Lab
from appliance.shipped import PACKAGE_ROOT

PIDS_FILE = "enforcers.json"
ENFORCER_MODULE = "appliance.enforcer.main"


@dataclass(frozen=True, slots=True)
class EnforcerPaths:
    """Where one enforcer keeps its files."""

    groups_file: Path
    workdir: Path
    log: Path


def kit_paths(data_dir: Path, root: Path, router: str) -> EnforcerPaths:
    """The kit's layout: groups from savd's data_dir, work files and log under `root`."""
    groups = data_dir / "enforcer-groups" / f"{router}.json"
    return EnforcerPaths(groups, root / router, root / f"{router}.log")


def enforcer_argv(lab: Lab, router: str, asn: int, paths: EnforcerPaths, reconcile_s: float = 1.0,
                  python: str = sys.executable) -> list[str]:
    """The full command line of the router's enforcer, run in its namespace."""
    return lab.exec_argv(router, [
        python, "-m", ENFORCER_MODULE, "-v", "run", "--node", router, "--asn", str(asn), "--configure-frr",
        "--vtysh", " ".join(lab.vtysh_argv(router)), "--groups-file", str(paths.groups_file),
        "--workdir", str(paths.workdir), "--reconcile-s", str(reconcile_s)])


def start_enforcer(lab: Lab, router: str, asn: int, paths: EnforcerPaths,
                   env: Mapping[str, str] | None = None, reconcile_s: float = 1.0) -> subprocess.Popen[bytes]:
    """Start the router's enforcer in its own session (so it outlives a CLI that started it)."""
    paths.groups_file.parent.mkdir(parents=True, exist_ok=True)
    if not paths.groups_file.exists():
        paths.groups_file.write_text("[]")  # savd writes the mapping before it pushes rules
    paths.workdir.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ, **(env or {}))
    paths_env = (str(PACKAGE_ROOT), full_env.get("PYTHONPATH", ""))
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in paths_env if p)
    with paths.log.open("ab") as log:
        return subprocess.Popen(enforcer_argv(lab, router, asn, paths, reconcile_s), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=full_env)


def routers_of(config: Config, lab: Lab, only: Sequence[str] = ()) -> list[str]:
    """The config's [[enforcer]] routers (or `only`), checked against the lab: each is a node and its
    netns is the node's; LabError naming the router otherwise."""
    by_router = {e.router: e for e in config.enforcers}
    routers = list(only) or [e.router for e in config.enforcers if e.netns]
    if not routers:
        raise LabError(f"{config.source}: no [[enforcer]] with a netns")
    for router in routers:
        entry = by_router.get(router)
        if entry is None:
            raise LabError(f"{config.source}: no [[enforcer]] for router {router}", node=router)
        lab.node(router)
        if entry.netns and entry.netns != lab.netns(router):
            raise LabError(f"{config.source}: [[enforcer]] {router} has netns {entry.netns!r} but the lab "
                           f"runs it in {lab.netns(router)!r} (savd lab init --prefix {lab.prefix}?)",
                           node=router)
    return routers


def enforcers_up(config: Config, lab: Lab, root: Path, only: Sequence[str] = ()) -> dict[str, int]:
    """Start the enforcers of `config` on `lab`, record their PIDs under `root`; {router: pid}.
    LabError when enforcers recorded under `root` still run."""
    running = {r: p for r, p in read_pids(root).items() if _is_enforcer(p, r)}
    if running:
        raise LabError(f"enforcers already running from {root}: "
                       + ", ".join(f"{r} (pid {p})" for r, p in sorted(running.items()))
                       + "; `savd lab enforcers down` first")
    routers = routers_of(config, lab, only)
    root.mkdir(parents=True, exist_ok=True)
    pids: dict[str, int] = {}
    for router in routers:
        paths = kit_paths(config.appliance.data_dir, root, router)
        proc = start_enforcer(lab, router, config.appliance.asn, paths)
        pids[router] = proc.pid
    _write_pids(root, pids)
    return pids


def enforcers_down(root: Path, timeout_s: float = 20.0) -> dict[str, int]:
    """Stop the enforcers recorded under `root` (SIGTERM, then SIGKILL of their session); {router: pid}
    of those that were running."""
    stopped = {r: p for r, p in read_pids(root).items() if _is_enforcer(p, r)}
    for pid in stopped.values():
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_alive(p) for p in stopped.values()):
        time.sleep(0.2)
    for pid in stopped.values():
        if _alive(pid):
            _signal(-pid, signal.SIGKILL)  # the session: the enforcer and its ExaBGP sidecar
    (root / PIDS_FILE).unlink(missing_ok=True)
    return stopped


def read_pids(root: Path) -> dict[str, int]:
    try:
        doc = json.loads((root / PIDS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


def _write_pids(root: Path, pids: Mapping[str, int]) -> None:
    tmp = root / (PIDS_FILE + ".tmp")
    tmp.write_text(json.dumps(dict(pids), indent=1))
    os.replace(tmp, root / PIDS_FILE)


def _is_enforcer(pid: int, router: str) -> bool:
    """`pid` is still the enforcer of `router` (not a recycled PID)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return ENFORCER_MODULE.encode() in argv and router.encode() in argv and _alive(pid)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1]
    except (OSError, IndexError):
        return False
    if state == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)  # our own child: reap it
        except ChildProcessError:
            pass
        return False
    return True


def _signal(pid: int, sig: int) -> None:
    try:
        if pid < 0:
            os.killpg(-pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass
