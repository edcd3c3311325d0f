"""A self-contained enforcer testbed in network namespaces, for the lab tests and the benches (not shipped:
it lives under tests/support; the traffic counter it uses is appliance.lab.traffic).

    h1 ──h1-r/r-h1── r (FRR zebra+bgpd AS 65000, savd-enforcer) ──r-h2/h2-r── h2 (receiver)
                     │ r-p               │ r-g
                     p (pusher: ExaBGP)  g (optional pusher: gobgpd AS 65200, 198.18.100.6/30)
                       AS 65100, eBGP; FlowSpec + one unicast route

Addresses: h1 198.18.101.10/24 + 2001:db8:101::10/64, h2 198.18.102.10/24 + 2001:db8:102::10/64,
p 198.18.100.2/30, r the .1 of each; the enforcer's in-node veth 198.18.254.0/30 in r. Interface group
7 = r-h1 (the customer side), 8 = r-h2. Namespace names are "<prefix>-<node>" with a random prefix, so
parallel runs never collide; `down()` kills every process by PID and deletes every namespace even
after a failure. zebra runs with `ip table range 100000 150000` unless `table_range_fix=False`: FRR
8.4.4's zebra crashes under FlowSpec bursts otherwise (see docs/enforcer.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from appliance.lab.errors import LabError
from appliance.lab.traffic import rx_counter
from appliance.speakers.exabgp import ExaBgpSpeaker, ExaNeighbor

log = logging.getLogger(__name__)

__all__ = ["Testbed", "TestbedError", "ThreadedSpeaker", "wait_for"]

ASN_R, ASN_P, ASN_G = 65000, 65100, 65200
GROUPS = {7: ("r-h1",), 8: ("r-h2",)}
LINKS = (
    (
        "r",
        "r-h1",
        "198.18.101.1/24",
        "2001:db8:101::1/64",
        "h1",
        "h1-r",
        "198.18.101.10/24",
        "2001:db8:101::10/64",
    ),
    (
        "r",
        "r-h2",
        "198.18.102.1/24",
        "2001:db8:102::1/64",
        "h2",
        "h2-r",
        "198.18.102.10/24",
        "2001:db8:102::10/64",
    ),
    (
        "r",
        "r-p",
        "198.18.100.1/30",
        "2001:db8:100::1/64",
        "p",
        "p-r",
        "198.18.100.2/30",
        "2001:db8:100::2/64",
    ),
    (
        "r",
        "r-g",
        "198.18.100.5/30",
        "2001:db8:104::1/64",
        "g",
        "g-r",
        "198.18.100.6/30",
        "2001:db8:104::2/64",
    ),
)
T = TypeVar("T")


class TestbedError(RuntimeError):
    """The testbed could not be built or did not reach the awaited state (says what and what was seen)."""


def _run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 60.0, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, input=stdin, check=False
    )
    if check and proc.returncode != 0:
        raise TestbedError(f"`{' '.join(argv)}` failed ({proc.returncode}): {proc.stderr.strip()[:800]}")
    return proc


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float, interval_s: float = 0.1) -> T:
    """Poll `probe` until it returns something truthy; TestbedError names `what` and the last value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = probe()
        except (TestbedError, LabError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise TestbedError(
                f"timed out after {timeout_s:.0f}s waiting for {what}; last seen: {last!r}"[:2000]
            )
        time.sleep(interval_s)


class ThreadedSpeaker:
    """An ExaBgpSpeaker in a namespace, driven from a private asyncio loop thread (sync API for tests)."""

    def __init__(self, workdir: Path, netns: str, neighbors: Sequence[ExaNeighbor]) -> None:
        self.speaker = ExaBgpSpeaker(workdir, neighbors, netns=netns)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="speaker-loop", daemon=True)
        self.thread.start()

    @staticmethod
    def pusher(workdir: Path, netns: str) -> ThreadedSpeaker:
        """The testbed's pusher in p: eBGP AS 65100 -> r (unicast + FlowSpec)."""
        neighbor = ExaNeighbor(
            address="198.18.100.1",
            local_address="198.18.100.2",
            local_as=ASN_P,
            peer_as=ASN_R,
            router_id="198.18.100.2",
            families=("ipv4 unicast", "ipv4 flow", "ipv6 flow"),
            name="r",
        )
        return ThreadedSpeaker(workdir, netns, [neighbor])

    def call(self, coro: Any, timeout: float = 300.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.call(self.speaker.start())

    def established(self, count: int = 1) -> bool:
        return len(self.speaker.established()) >= count

    def send_many(self, commands: Sequence[str]) -> int:
        async def go() -> int:
            results = await asyncio.gather(*(self.speaker.send(c) for c in commands))
            return sum(1 for ok in results if ok)

        return int(self.call(go()))

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self.speaker.stop(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Testbed:
    """Build with `up()`, always `down()` (or use it as a context manager)."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        prefix: str | None = None,
        table_range_fix: bool = True,
        enforcer: bool = True,
        shard_size: int = 1024,
        workroot: Path = Path("/run/savd-enforcer-tb"),
        keep_files: bool = False,
        gobgp: bool = False,
    ) -> None:
        self.prefix = prefix or "enf" + secrets.token_hex(2)
        self.keep_files = bool(keep_files)
        self.with_gobgp = gobgp
        self.gobgp: Any = None
        self.table_range_fix = table_range_fix
        self.with_enforcer = enforcer
        self.shard_size = shard_size
        self.dir = workroot / self.prefix
        self.enforcer_proc: subprocess.Popen[bytes] | None = None
        self.pusher: ThreadedSpeaker | None = None
        self._namespaces: list[str] = []

    # --- names ---------------------------------------------------------------------------------------
    def ns(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def vtysh(self, *commands: str, daemon: str | None = None, timeout: float = 30.0) -> str:
        argv = ["vtysh", "-N", self.ns("r")] + (["-d", daemon] if daemon else [])
        for c in commands:
            argv += ["-c", c]
        return _run(argv, timeout=timeout).stdout

    def exec(
        self, node: str, argv: Sequence[str], *, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", self.ns(node), *argv], check=check, timeout=timeout)

    def pids(self, node: str) -> list[int]:
        out = _run(["ip", "netns", "pids", self.ns(node)], check=False).stdout
        return [int(p) for p in out.split()]

    def frr_pid(self, daemon: str) -> int | None:
        path = Path("/var/run/frr") / self.ns("r") / f"{daemon}.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(path.read_text().strip())
            os.kill(pid, 0)
            return pid
        return None

    # --- life cycle ----------------------------------------------------------------------------------
    def __enter__(self) -> Testbed:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        try:
            self._build()
        except BaseException:
            self.down()
            raise

    def _build(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.dir, "frr", "frr")
        for node in ("r", "h1", "h2", "p", "g"):
            _run(["ip", "netns", "add", self.ns(node)])
            self._namespaces.append(self.ns(node))
            _run(["ip", "-n", self.ns(node), "link", "set", "lo", "up"])
            for key, value in (
                ("net.ipv4.ip_forward", "1"),
                ("net.ipv6.conf.all.forwarding", "1"),
                ("net.ipv4.conf.all.rp_filter", "0"),
                ("net.ipv4.conf.default.rp_filter", "0"),
                ("net.ipv6.conf.all.accept_dad", "0"),
                ("net.ipv6.conf.default.accept_dad", "0"),
            ):
                self.exec(node, ["sysctl", "-qw", f"{key}={value}"])
        for a, ifa, a4, a6, b, ifb, b4, b6 in LINKS:
            _run(
                [
                    "ip",
                    "link",
                    "add",
                    ifa,
                    "netns",
                    self.ns(a),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    ifb,
                    "netns",
                    self.ns(b),
                ]
            )
            for node, ifname, v4, v6 in ((a, ifa, a4, a6), (b, ifb, b4, b6)):
                _run(["ip", "-n", self.ns(node), "addr", "add", v4, "dev", ifname])
                _run(["ip", "-n", self.ns(node), "-6", "addr", "add", v6, "dev", ifname, "nodad"])
                _run(["ip", "-n", self.ns(node), "link", "set", ifname, "up"])
        for host, gw4, gw6 in (
            ("h1", "198.18.101.1", "2001:db8:101::1"),
            ("h2", "198.18.102.1", "2001:db8:102::1"),
        ):
            _run(["ip", "-n", self.ns(host), "route", "add", "198.18.0.0/15", "via", gw4])
            _run(["ip", "-n", self.ns(host), "-6", "route", "add", "2001:db8::/32", "via", gw6])
        self._start_frr()
        self.pusher = ThreadedSpeaker.pusher(self.dir / "pusher", self.ns("p"))
        self.pusher.start()
        wait_for("eBGP session p -> r established", self.pusher.established, 60)
        if self.with_gobgp:
            self._start_gobgp()
        if self.with_enforcer:
            self.start_enforcer()

    def _start_frr(self) -> None:
        ns = self.ns("r")
        zebra_conf = "hostname r\n" + ("ip table range 100000 150000\n" if self.table_range_fix else "")
        bgpd_conf = (
            f"hostname r\nrouter bgp {ASN_R}\n bgp router-id 198.18.100.1\n no bgp ebgp-requires-policy\n"
            f" no bgp default ipv4-unicast\n neighbor 198.18.100.2 remote-as {ASN_P}\n"
            f" neighbor 198.18.100.6 remote-as {ASN_G}\n"
            " address-family ipv4 unicast\n  neighbor 198.18.100.2 activate\n exit-address-family\n"
        )
        for name, text in (("zebra.conf", zebra_conf), ("bgpd.conf", bgpd_conf)):
            (self.dir / name).write_text(text)
            shutil.chown(self.dir / name, "frr", "frr")
        for daemon in ("zebra", "bgpd"):
            argv = [
                f"/usr/lib/frr/{daemon}",
                "-d",
                "-N",
                ns,
                "-f",
                str(self.dir / f"{daemon}.conf"),
                "--log",
                f"file:{self.dir / daemon}.log",
                "-A",
                "127.0.0.1",
            ]
            self.exec("r", argv)
            vty = Path("/var/run/frr") / ns / f"{daemon}.vty"
            wait_for(f"{daemon} vty socket {vty}", vty.exists, 30)
        # FRR 8.4.4: a flowspec AF must be configured after start
        time.sleep(1.0)
        lines = ["configure terminal", f"router bgp {ASN_R}"]
        for afi in ("ipv4", "ipv6"):
            lines += [
                f"address-family {afi} flowspec",
                "neighbor 198.18.100.2 activate",
                "neighbor 198.18.100.6 activate",
                "exit-address-family",
            ]
        self.vtysh(*lines)

    def _start_gobgp(self) -> None:
        """gobgpd in g (AS 65200, eBGP to r), driven by appliance.speakers.gobgp on the pusher's loop."""
        from appliance.speakers.gobgp import GoBgpNeighbor, GoBgpSpeaker

        assert self.pusher is not None
        neighbor = GoBgpNeighbor("198.18.100.5", ASN_R, local_address="198.18.100.6", name="r")
        self.gobgp = GoBgpSpeaker(
            self.dir / "gobgp",
            asn=ASN_G,
            router_id="198.18.100.6",
            name="g",
            neighbors=[neighbor],
            netns=self.ns("g"),
            group_asn=1,
        )
        self.pusher.call(self.gobgp.start())
        wait_for(
            "GoBGP session g -> r established",
            lambda: self.pusher.call(self.gobgp.established()) if self.pusher else None,
            60,
            0.25,
        )

    def gobgp_call(self, method: str, *args: Any) -> Any:
        """Run `GoBgpSpeaker.<method>(*args)` (a coroutine) on the pusher's loop."""
        assert self.pusher is not None and self.gobgp is not None
        return self.pusher.call(getattr(self.gobgp, method)(*args))

    def start_enforcer(self, extra: Sequence[str] = (), *, wait_session: bool = True) -> None:
        """Start savd-enforcer in r; wait for its HTTP endpoint and, unless `wait_session` is False (a
        test that keeps FRR from accepting it), for its session with FRR."""
        groups = [f"--group={gid}={','.join(names)}" for gid, names in GROUPS.items()]
        argv = [
            "ip",
            "netns",
            "exec",
            self.ns("r"),
            sys.executable,
            "-m",
            "appliance.enforcer.main",
            "-v",
            "run",
            "--node",
            "r",
            "--asn",
            str(ASN_R),
            "--configure-frr",
            "--vtysh",
            f"vtysh -N {self.ns('r')}",
            "--workdir",
            str(self.dir / "enforcer"),
            "--counters-file",
            str(self.dir / "counters.json"),
            "--reconcile-s",
            "1",
            "--reconfigure-after-s",
            "3",
            "--shard-size",
            str(self.shard_size),
            *groups,
            *extra,
        ]
        env = dict(os.environ)
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
        with (self.dir / "enforcer.log").open("ab") as logf:
            self.enforcer_proc = subprocess.Popen(
                argv, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        wait_for(
            "enforcer HTTP endpoint" + (" and its iBGP session with FRR" if wait_session else ""),
            lambda: self.enforcer_status().get("sessions") if wait_session else self.enforcer_status(),
            60,
            0.25,
        )

    def stop_enforcer(self) -> None:
        proc = self.enforcer_proc
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.enforcer_proc = None

    def down(self) -> None:
        """Stop everything this testbed started, by PID, and delete its namespaces (idempotent)."""
        with contextlib.suppress(Exception):
            self.stop_enforcer()
        if self.gobgp is not None and self.pusher is not None:
            with contextlib.suppress(Exception):
                self.pusher.call(self.gobgp.stop(), timeout=30)
            self.gobgp = None
        if self.pusher:
            self.pusher.stop()
            self.pusher = None
        for ns in list(self._namespaces):
            pids = [int(p) for p in _run(["ip", "netns", "pids", ns], check=False).stdout.split()]
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                deadline = time.monotonic() + 5
                while pids and time.monotonic() < deadline:
                    pids = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
                    time.sleep(0.05)
            _run(["ip", "netns", "del", ns], check=False)
            self._namespaces.remove(ns)
        shutil.rmtree(Path("/var/run/frr") / self.ns("r"), ignore_errors=True)
        if not self.keep_files:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- driving -------------------------------------------------------------------------------------
    def push(self, commands: Sequence[str]) -> int:
        assert self.pusher is not None
        return self.pusher.send_many(commands)

    def enforcer_get(self, path: str) -> dict[str, Any]:
        code = (
            "import sys,urllib.request;sys.stdout.write(urllib.request.urlopen("
            f"'http://127.0.0.1:9180{path}',timeout=10).read().decode())"
        )
        out = self.exec("r", [sys.executable, "-c", code], timeout=30).stdout
        doc = json.loads(out)
        return doc if isinstance(doc, dict) else {}

    def enforcer_status(self) -> dict[str, Any]:
        if self.enforcer_proc and self.enforcer_proc.poll() is not None:
            tail = (self.dir / "enforcer.log").read_text()[-1500:]
            raise TestbedError(f"enforcer exited with {self.enforcer_proc.returncode}: {tail}")
        return self.enforcer_get("/status")

    def nft_listing(self) -> dict[str, Any] | None:
        proc = self.exec("r", ["nft", "-j", "list", "table", "inet", "savd_enforcer"], check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def rx_counter(self, source: str) -> int:
        """Packets from `source` seen at h2 (a counter rule added on first use)."""
        return rx_counter(self.ns("h2"), source)

    def send_v4(self, source: str, count: int, dst: str = "198.18.102.10") -> None:
        """UDP packets from h1 with `source` as source address (hping3 -a spoofs without adding it)."""
        self.exec(
            "h1",
            ["hping3", "--udp", "-p", "5000", "-a", source, "-c", str(count), "-i", "u2000", "-q", dst],
            check=False,
            timeout=60,
        )

    def send_v6(self, source: str, count: int, dst: str = "2001:db8:102::10") -> None:
        """ICMPv6 echo requests from h1 with `source` (added to h1-r: nodad, preferred_lft 0)."""
        have = self.exec("h1", ["ip", "-6", "-j", "addr", "show", "dev", "h1-r"]).stdout
        if source not in have:
            self.exec(
                "h1",
                ["ip", "-6", "addr", "add", f"{source}/128", "dev", "h1-r", "nodad", "preferred_lft", "0"],
            )
        self.exec(
            "h1",
            ["ping", "-6", "-q", "-n", "-I", source, "-c", str(count), "-i", "0.01", "-W", "1", dst],
            check=False,
            timeout=60,
        )


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True
