"""Thin wrappers over iproute2 and /proc for the lab runner: namespaces, veth pairs, sysctls, processes.

Owns every command that changes the host's network state, so the runner reads as a sequence of steps
and errors carry the command that failed. Veth pairs are created directly inside the two namespaces
(`ip -n A link add IF type veth peer name IF2 netns B`), so no lab interface ever appears in the host
namespace and deleting a namespace deletes its veths. Processes are only ever signalled by PID.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from appliance.lab.errors import LabError

log = logging.getLogger(__name__)
NETNS_DIR = Path("/run/netns")


def run(argv: Sequence[str], *, node: str | None = None, timeout_s: float = 30.0) -> str:
    """Run a command that must succeed; LabError names the node and the command otherwise."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{_who(node)}{' '.join(argv)}: {exc}", node=node) from exc
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.split()) or f"exit code {proc.returncode}"
        raise LabError(f"{_who(node)}{' '.join(argv)}: {detail}", node=node)
    return proc.stdout


def _who(node: str | None) -> str:
    return f"node {node}: " if node else ""


def list_netns() -> set[str]:
    """Names of all network namespaces known to iproute2."""
    try:
        return {p.name for p in NETNS_DIR.iterdir()}
    except FileNotFoundError:
        return set()


def add_netns(name: str, node: str) -> None:
    run(["ip", "netns", "add", name], node=node)
    run(["ip", "-n", name, "link", "set", "lo", "up"], node=node)


def delete_netns(name: str) -> None:
    if name in list_netns():
        run(["ip", "netns", "delete", name])


def set_sysctls(netns: str, sysctls: Iterable[tuple[str, str]], node: str) -> None:
    items = [f"{key}={value}" for key, value in sysctls]
    if items:
        run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", *items], node=node)


def add_veth(ns_a: str, if_a: str, ns_b: str, if_b: str, mtu: int | None, label: str) -> None:
    """One veth pair straight between two namespaces, both ends up."""
    mtu_args = ["mtu", str(mtu)] if mtu else []
    try:
        run(
            [
                "ip",
                "-n",
                ns_a,
                "link",
                "add",
                if_a,
                *mtu_args,
                "type",
                "veth",
                "peer",
                "name",
                if_b,
                *mtu_args,
                "netns",
                ns_b,
            ]
        )
    except LabError as exc:
        raise LabError(f"link {label}: {exc}") from exc
    run(["ip", "-n", ns_a, "link", "set", if_a, "up"])
    run(["ip", "-n", ns_b, "link", "set", if_b, "up"])


def with_hostname(hostname: str, argv: Sequence[str]) -> list[str]:
    """Run argv in its own UTS namespace named like the node, as in a container (FRR daemons take
    their hostname, shown in vtysh and sent in BGP's hostname capability, from uname)."""
    return ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *argv]


def netns_pids(name: str) -> list[int]:
    """PIDs of every process living in the namespace (exec-line children included)."""
    if name not in list_netns():
        return []
    proc = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
    return [int(w) for w in proc.stdout.split() if w.isdigit()]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def process_start_ticks(pid: int) -> int | None:
    """Start time of a process (clock ticks since boot): tells a live owner from a reused PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def kill_pids(pids: Iterable[int], grace_s: float = 3.0) -> list[int]:
    """SIGTERM, wait up to `grace_s`, then SIGKILL what is left; returns the PIDs still alive after."""
    todo = [p for p in set(pids) if p > 1 and p != os.getpid()]
    for pid in todo:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(pid_alive(p) for p in todo):
        time.sleep(0.05)
    for pid in todo:
        if pid_alive(pid):
            log.warning("event=lab_kill pid=%d signal=KILL cmd=%r", pid, " ".join(cmdline(pid))[:120])
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(pid_alive(p) for p in todo):
        time.sleep(0.05)
    return [p for p in todo if pid_alive(p)]


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
