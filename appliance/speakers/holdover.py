"""Speaker holdover: a managed speaker outlives a crashed savd for a bounded time, then goes.

Why: FRR applies BGP graceful restart to unicast, multicast, VPN and EVPN only (`FOREACH_AFI_SAFI_NSF` in
FRR's lib/zebra.h, 8.4 to master), so when savd's FlowSpec session drops, the router drops savd's rules at
once, whatever GR capability the speaker advertised (seen in the lab: r1's FlowSpec table empty as soon as
the speaker died). Keeping the speaker process, its session and its RIB alive across a savd restart keeps
the rules in force, and a restarted savd adopts it (speakers/gobgp.py, speakers/exabgp.py; an ExaBGP
with BGP-LS peers is replaced, its received topology cannot be asked for again). But a speaker nobody
drives must not hold rules for ever (fail open; an orphaned ExaBGP was seen doing just that): a guard
process stops it once no live savd has owned it for `grace_s` seconds.

    python -m appliance.speakers.holdover --workdir W --grace-s G -- CMD ...

runs CMD as its child and records its own PID in W/holdover.pid. Every second it reads W/owner.pid (written
by `claim`); when that process has not been alive for G seconds, it terminates CMD and exits. It exits with
CMD's status when CMD exits, and terminates CMD on SIGTERM/SIGINT. Nothing here is BGP-specific.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType

GUARD_FILE, OWNER_FILE = "holdover.pid", "owner.pid"
MODULE = "appliance.speakers.holdover"
DEFAULT_GRACE_S = 120.0  # FRR's default graceful-restart restart time: the same promise, kept by us
POLL_S = 1.0

log = logging.getLogger(__name__)


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first); [] when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return []


def alive(pid: int, started: str = "") -> bool:
    """A running process (zombies are dead: a killed savd stays a zombie until its parent reaps it); with
    `started` (its start time in clock ticks), that very process and not a later one given its PID."""
    fields = _stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X") and (not started or fields[19] == started)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def claim(workdir: Path, pid: int | None = None) -> None:
    """Make `pid` (default: this process) the owner the guard in `workdir` checks for; its start time is
    recorded too, so a new process that gets the PID of a dead savd does not keep the speaker alive."""
    pid = pid or os.getpid()
    fields = _stat(pid)
    tmp = workdir / f".{OWNER_FILE}.tmp"
    tmp.write_text(f"{pid} {fields[19] if fields else ''}\n")
    tmp.replace(workdir / OWNER_FILE)


def owner_alive(workdir: Path) -> bool:
    try:
        pid, _, started = (workdir / OWNER_FILE).read_text().strip().partition(" ")
        return alive(int(pid), started)
    except (OSError, ValueError):
        return False


def guard_pid(workdir: Path) -> int | None:
    """The PID of the live guard running in `workdir`, if any (checked against its command line)."""
    pid = _read_pid(workdir / GUARD_FILE)
    if pid is None or not alive(pid):
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return pid if MODULE.encode() in argv and str(workdir).encode() in argv else None


def processes_naming(path: Path) -> list[int]:
    """Processes (not this one) with a command-line argument under `path`: a speaker's guard, the speaker
    and its helpers all name its work directory, which lies in savd's data_dir and so is ours alone."""
    marker = str(path).encode()
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.startswith(marker) for arg in argv):
            found.append(int(entry.name))
    return found


def reap(workdir: Path) -> list[int]:
    """Kill (SIGKILL, by PID) what a savd that died without stopping its speakers left in `workdir`.
    Without this the restarted speaker cannot bind its listening port."""
    killed = []
    for pid in processes_naming(workdir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def claim_held_over(root: Path) -> list[Path]:
    """Claim, at once, every speaker under `root` whose guard is still holding it: a restarting savd does
    this before its slow start-up (imports, journal, components), so a short holdover does not run out
    while it gets there. Adoption proper (`adopt`) still checks the configuration and ends what it
    cannot take over."""
    claimed = []
    for pidfile in sorted(root.glob(f"**/{GUARD_FILE}")) if root.is_dir() else ():
        if guard_pid(pidfile.parent) is not None:
            claim(pidfile.parent)
            claimed.append(pidfile.parent)
    return claimed


async def adopt(workdir: Path, files: Mapping[str, str],
                answers: Callable[[], Awaitable[bool]]) -> int | None:
    """The guard PID of the speaker a dead savd left in `workdir`, taken over by this process when its
    configuration `files` (name -> text) are unchanged and `answers()` (it talks to us) says yes;
    otherwise that speaker is ended and None returned, as when there is none."""
    pid = guard_pid(workdir)
    if pid is None:
        return None
    try:
        same = all((workdir / name).read_text() == text for name, text in files.items())
    except OSError:
        same = False
    if same:
        claim(workdir)
        if await answers():
            return pid
    log.warning("event=speaker-not-adopted workdir=%s pid=%d reason=%s", workdir, pid,
                "no answer" if same else "configuration changed")
    await end_process(pid)
    return None


async def release(workdir: Path, guard: int) -> list[int]:
    """Stop an adopted speaker: its guard (which ends the speaker), then whatever still names `workdir`
    (the speaker itself, had the guard to be killed); the PIDs killed that way."""
    await end_process(guard)
    return reap(workdir)


async def wait_gone(pid: int, interval_s: float = 0.5) -> None:
    """Until `pid` (not our child: no wait() for it) has ended."""
    while alive(pid):
        await asyncio.sleep(interval_s)


async def end_process(pid: int, timeout_s: float = 5.0) -> None:
    """SIGTERM a process that is not our child, wait for it to go, SIGKILL it if it does not."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        for _ in range(int(timeout_s / 0.1)):
            if not alive(pid):
                return
            await asyncio.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


def guard_argv(workdir: Path, grace_s: float, command: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", MODULE, "--workdir", str(workdir), "--grace-s", f"{grace_s:g}", "--",
            *command]


def die_with_parent() -> None:
    """preexec_fn: PR_SET_PDEATHSIG(SIGKILL), so a child never outlives the process that watches it."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def watch(workdir: Path, grace_s: float, command: Sequence[str]) -> int:
    """Run `command` until it exits, or until its owner has been gone for `grace_s` seconds. The child
    dies with the guard (a guard killed by SIGKILL must not leave a speaker holding rules for ever)."""
    child = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    (workdir / GUARD_FILE).write_text(f"{os.getpid()}\n")

    def stop(signum: int, frame: FrameType | None) -> None:
        _terminate(child)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    orphaned_at: float | None = None
    while (code := child.poll()) is None:
        if owner_alive(workdir):
            orphaned_at = None
        elif orphaned_at is None:
            orphaned_at = time.monotonic()
            log.warning("event=speaker-orphaned workdir=%s grace_s=%g", workdir, grace_s)
        elif time.monotonic() - orphaned_at >= grace_s:
            log.warning("event=speaker-holdover-expired workdir=%s pid=%d", workdir, child.pid)
            _terminate(child)
            return 0
        time.sleep(POLL_S)
    return code


def _terminate(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m " + MODULE, description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--grace-s", type=float, default=DEFAULT_GRACE_S)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        return watch(args.workdir.resolve(), args.grace_s, args.command)
    return 130


if __name__ == "__main__":
    sys.exit(main())
