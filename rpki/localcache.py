"""A local StayRTR 0.5.1 on loopback, serving a JSON file we write: for tests, the bench and demos.

Owns the process lifetime only (start, restart, stop by PID); it binds 127.0.0.1 and random free ports
for RTR and metrics (StayRTR's metrics default to all interfaces). Writes the
StayRTR input format (legacy `provider_authorizations` for ASPAs, the only
form 0.5.1 reads).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

from appliance.model import Aspa, Vrp

STAYRTR = "stayrtr"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_stayrtr_json(path: Path, vrps: Iterable[Vrp], aspas: Iterable[Aspa] = ()) -> None:
    """Write atomically (rename), so a polling StayRTR never reads half a file."""
    roas = [{"prefix": v.prefix, "maxLength": v.max_length, "asn": v.asn, "ta": "lab"} for v in vrps]
    pas = [{"customer_asid": a.customer, "providers": list(a.providers)} for a in aspas]
    doc = {
        "metadata": {"buildtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "roas": roas,
        "provider_authorizations": {"ipv4": pas, "ipv6": pas},
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


class LocalStayRtr:
    """`with LocalStayRtr(json_path) as cache:` ... `cache.port` (a free one unless `port` is given);
    `restart()` keeps the port."""

    def __init__(
        self,
        cache_file: Path,
        refresh_s: int = 1,
        protocol: int = 2,
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
        start_timeout_s: float = 10.0,
        port: int | None = None,
    ) -> None:
        if shutil.which(STAYRTR) is None:
            raise FileNotFoundError("stayrtr not installed (Debian package stayrtr; run scripts/setup)")
        self.cache_file = cache_file
        self.refresh_s = refresh_s
        self.protocol = protocol
        self.extra_args = list(extra_args)
        self.log_path = log_path or cache_file.with_suffix(".stayrtr.log")
        self.port = port if port is not None else free_port()
        self.metrics_port = free_port()
        self._pick_ports = port is None  # until a start succeeds: a port taken meanwhile is re-picked
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_timeout_s = start_timeout_s

    def start(self, timeout_s: float | None = None) -> None:
        """Start StayRTR and wait until it listens. Ports picked by free_port() can be taken by another
        process before StayRTR binds them (busy machines): then, on the first start only, new ones are
        picked (3 attempts); `restart()` keeps its port."""
        for attempt in range(3):
            try:
                self._start_once(timeout_s)
            except RuntimeError:
                taken = "address already in use" in self.log_path.read_text(errors="replace")[-2000:]
                if not (taken and self._pick_ports and attempt < 2):
                    raise
                self.port, self.metrics_port = free_port(), free_port()
                continue
            self._pick_ports = False
            return

    def _start_once(self, timeout_s: float | None) -> None:
        timeout_s = timeout_s or self.start_timeout_s
        args = [
            STAYRTR, "-bind", f"127.0.0.1:{self.port}", "-cache", str(self.cache_file), "-checktime=false",
            "-metrics.addr", f"127.0.0.1:{self.metrics_port}", "-refresh", str(self.refresh_s),
            "-protocol", str(self.protocol), *self.extra_args,
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stayrtr exited with {self.proc.returncode}; log {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"stayrtr did not listen on 127.0.0.1:{self.port} in {timeout_s} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> LocalStayRtr:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
