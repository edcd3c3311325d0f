"""A two-namespace FlowSpec lab: a speaker namespace and an FRR 8.4.4 bgpd namespace joined by a veth.

Used by tests/integration/flowspec and bench/flowspec_bench.py. bgpd runs with -Z (no zebra: the
zebra PBR path crashes under FlowSpec bursts) as our child, killed by PID. The
flowspec address families are applied through vtysh after start (§3.3). FRR's FlowSpec RIB is read
with `vtysh -d bgpd -c 'show bgp ipvX flowspec detail json'`, which prints one JSON array per entry,
concatenated (§3.1): decoded with raw_decode in a loop, each entry's list of one-key objects merged.
Names carry a random suffix so parallel runs never collide; everything is removed on close, even
after a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

FRR_AS = 65010
SPEAKER_AS = 65001
FRR_ADDR = "198.19.254.1"
SPEAKER_ADDR = "198.19.254.2"


class LabError(RuntimeError):
    pass


def sh(*argv: str, check: bool = True, timeout: float = 20.0) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


def parse_frr_flowspec(text: str) -> list[dict[str, Any]]:
    """Entries of `show bgp ipvX flowspec detail json` (concatenated arrays of one-key objects)."""
    dec = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    i = 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        doc, i = dec.raw_decode(text, i)
        items = doc if isinstance(doc, list) else [doc]
        entry: dict[str, Any] = {}
        for part in items:
            if isinstance(part, dict):
                entry.update(part)
        if entry:
            out.append(entry)


class FrrFlowLab:
    """Namespaces <p>s (speaker) and <p>f (FRR), veth <p>s0/<p>f0, bgpd in <p>f."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or "fsp" + secrets.token_hex(3)
        self.ns_speaker, self.ns_frr = self.prefix + "s", self.prefix + "f"
        self.dir = Path(tempfile.mkdtemp(prefix=self.prefix + "-"))
        self.run_dir = self.dir / "run"
        self.bgpd: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FrrFlowLab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        for ns in (self.ns_speaker, self.ns_frr):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        a, b = self.prefix + "s0", self.prefix + "f0"
        sh("ip", "link", "add", a, "netns", self.ns_speaker, "type", "veth", "peer", "name", b,
           "netns", self.ns_frr)
        sh("ip", "-n", self.ns_speaker, "addr", "add", SPEAKER_ADDR + "/30", "dev", a)
        sh("ip", "-n", self.ns_frr, "addr", "add", FRR_ADDR + "/30", "dev", b)
        sh("ip", "-n", self.ns_speaker, "link", "set", a, "up")
        sh("ip", "-n", self.ns_frr, "link", "set", b, "up")
        self._start_bgpd()

    def _start_bgpd(self) -> None:
        self.run_dir.mkdir(parents=True)
        shutil.chown(self.run_dir, "frr", "frr")
        os.chmod(self.dir, 0o755)
        conf = self.dir / "bgpd.conf"
        conf.write_text("\n".join([
            "hostname fsp-frr", "log file " + str(self.run_dir / "bgpd.log"),
            f"router bgp {FRR_AS}", f" bgp router-id {FRR_ADDR}", " no bgp ebgp-requires-policy",
            " no bgp default ipv4-unicast", f" neighbor {SPEAKER_ADDR} remote-as {SPEAKER_AS}",
            f" neighbor {SPEAKER_ADDR} timers connect 1", f" neighbor {SPEAKER_ADDR} passive", "",
        ]))
        shutil.chown(conf, "frr", "frr")
        argv = ["ip", "netns", "exec", self.ns_frr, "/usr/lib/frr/bgpd", "-Z", "-A", "127.0.0.1",
                "--vty_socket", str(self.run_dir), "-i", str(self.run_dir / "bgpd.pid"), "-f", str(conf)]
        with open(self.dir / "bgpd.err", "wb") as err:
            self.bgpd = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        self.wait(lambda: (self.run_dir / "bgpd.vty").exists() or None, "bgpd.vty socket", 15)
        self.vtysh("configure terminal", f"router bgp {FRR_AS}",
                   "address-family ipv4 flowspec", f"neighbor {SPEAKER_ADDR} activate", "exit-address-family",
                   "address-family ipv6 flowspec", f"neighbor {SPEAKER_ADDR} activate", "exit-address-family")

    def vtysh(self, *lines: str) -> str:
        argv = ["ip", "netns", "exec", self.ns_frr, "vtysh", "--vty_socket", str(self.run_dir), "-d", "bgpd"]
        for line in lines:
            argv += ["-c", line]
        return sh(*argv, timeout=60)

    def flowspec(self, afi: int = 4) -> list[dict[str, Any]]:
        return parse_frr_flowspec(self.vtysh(f"show bgp ipv{afi} flowspec detail json"))

    def received(self, afi: int = 4) -> int:
        """FlowSpec routes FRR has received from the speaker (pfxRcd of the flowspec summary)."""
        doc = json.loads(self.vtysh(f"show bgp ipv{afi} flowspec summary json") or "{}")
        return int(doc.get("peers", {}).get(SPEAKER_ADDR, {}).get("pfxRcd", 0))

    def connections(self) -> int:
        """How often the session to the speaker has been Established (FRR's connectionsEstablished)."""
        doc = json.loads(self.vtysh("show bgp ipv4 flowspec summary json") or "{}")
        return int(doc.get("peers", {}).get(SPEAKER_ADDR, {}).get("connectionsEstablished", 0))

    def reset_session(self) -> None:
        """`clear bgp` the speaker's session and wait until it is Established again."""
        before = self.connections()
        self.vtysh(f"clear bgp {SPEAKER_ADDR}")
        self.wait(lambda: (self.connections() > before and self.session_up()) or None,
                  f"session re-established after clear (was {before} connections)", 60)

    def session_up(self) -> bool:
        doc = json.loads(self.vtysh(f"show bgp neighbor {SPEAKER_ADDR} json") or "{}")
        return bool(doc.get(SPEAKER_ADDR, {}).get("bgpState") == "Established")

    def wait(self, probe: Callable[[], T | None], what: str, timeout: float = 30.0,
             interval: float = 0.1) -> T:
        """Poll `probe` until it returns a truthy value; LabError naming `what` and the last value."""
        deadline = time.monotonic() + timeout
        last: T | None = None
        while time.monotonic() < deadline:
            last = probe()
            if last:
                return last
            time.sleep(interval)
        raise LabError(f"timed out after {timeout}s waiting for {what}; last seen: {str(last)[:500]}")

    def close(self) -> None:
        if self.bgpd is not None and self.bgpd.poll() is None:
            self.bgpd.send_signal(signal.SIGTERM)
            try:
                self.bgpd.wait(5)
            except subprocess.TimeoutExpired:
                self.bgpd.kill()
                self.bgpd.wait()
        self.bgpd = None
        for ns in (self.ns_speaker, self.ns_frr):
            pids = sh("ip", "netns", "pids", ns, check=False).split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
