"""rtrlib 0.8 (C, RTR v0/v1, ROAs only) as a second RTR backend behind the same table interface.

rtrlib runs in a worker process (`python -m rpki.rtrlib`): 0.8 aborts in rtr_mgr_stop/free
(tr_tcp_free assertion), and a separate process also gives a clean peak-RSS
figure for the bench. The worker talks to us over its stdout in frames::

    kind(1) length(4) payload      kind S: JSON status   kind D: VRP keys (rpki/keys.py form),
                                   payload of D = IPv4 byte count(4) + IPv4 keys + IPv6 keys

The worker exits when its stdin closes, so it never outlives its parent. ASPA is not available from
rtrlib 0.8; use the native client (rpki/rtr/) for RTR v2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from appliance.errors import HostError
from rpki.keys import V4_KEY_LEN, V6_KEY_LEN
from rpki.tables import RpkiTables

_FRAME = struct.Struct(">cI")


class RtrlibUnavailable(HostError, RuntimeError):
    """The cffi module was not built (scripts/build.d/20-rtrlib.sh) or librtr is missing."""


@dataclass(frozen=True, slots=True)
class RtrlibSync:
    vrps: frozenset[bytes]
    sync_s: float
    peak_rss_kib: int


def available() -> bool:
    try:
        import rpki._rtrlib_cffi  # noqa: F401
    except ImportError:
        return False
    return True


def split_keys(payload: bytes) -> frozenset[bytes]:
    (v4_bytes,) = struct.unpack_from(">I", payload)
    v4 = payload[4 : 4 + v4_bytes]
    v6 = payload[4 + v4_bytes :]
    return frozenset(
        [v4[i : i + V4_KEY_LEN] for i in range(0, len(v4), V4_KEY_LEN)]
        + [v6[i : i + V6_KEY_LEN] for i in range(0, len(v6), V6_KEY_LEN)]
    )


def _worker_args(host: str, port: int, mode: str, timeout_s: float) -> list[str]:
    return [sys.executable, "-m", "rpki.rtrlib", mode, host, str(port), "--timeout", str(timeout_s)]


def _read_frame(stream: IO[bytes]) -> tuple[bytes, bytes]:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        raise RtrlibUnavailable("rtrlib worker exited without a reply")
    kind, length = _FRAME.unpack(head)
    payload = stream.read(length)
    return kind, payload


def sync_once(host: str, port: int, timeout_s: float = 60.0) -> RtrlibSync:
    """Full sync with a fresh rtrlib client in a worker; returns its VRPs, sync time and peak RSS."""
    if not available():
        raise RtrlibUnavailable("rpki._rtrlib_cffi not built: run scripts/build.d/20-rtrlib.sh")
    proc = subprocess.Popen(_worker_args(host, port, "once", timeout_s), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        status: dict[str, Any] = {}
        while True:
            kind, payload = _read_frame(proc.stdout)
            if kind == b"S":
                status = json.loads(payload)
                if status.get("error"):
                    raise RtrlibUnavailable(f"rtrlib worker: {status['error']}")
            elif kind == b"D":
                return RtrlibSync(split_keys(payload), float(status["sync_s"]), int(status["peak_rss_kib"]))
    finally:
        proc.kill()
        proc.wait()


class RtrlibSource:
    """Feeds one cache's VRPs, as seen by rtrlib, into `tables` under `source` (default "rtrlib")."""

    def __init__(self, host: str, port: int, tables: RpkiTables, source: str = "rtrlib") -> None:
        self.host, self.port, self.tables, self.source = host, port, tables, source
        self.status: dict[str, Any] = {}
        self.synced = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout_s: float = 60.0) -> None:
        if not available():
            raise RtrlibUnavailable("rpki._rtrlib_cffi not built: run scripts/build.d/20-rtrlib.sh")
        self._proc = await asyncio.create_subprocess_exec(
            *_worker_args(self.host, self.port, "follow", timeout_s),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=64 << 20,
        )
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        while True:
            head = await stdout.readexactly(_FRAME.size)
            kind, length = _FRAME.unpack(head)
            payload = await stdout.readexactly(length)
            if kind == b"S":
                self.status = json.loads(payload)
            elif kind == b"D":
                self.tables.set_source(self.source, split_keys(payload))
                self.synced.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        self.tables.remove_source(self.source)


# --- worker process ----------------------------------------------------------------------------------


def _emit(kind: bytes, payload: bytes) -> None:
    out = sys.stdout.buffer
    out.write(_FRAME.pack(kind, len(payload)) + payload)
    out.flush()


def _worker(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m rpki.rtrlib")
    parser.add_argument("mode", choices=("once", "follow"))
    parser.add_argument("host")
    parser.add_argument("port")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    try:
        from rpki._rtrlib_cffi import ffi, lib
    except ImportError as exc:
        _emit(b"S", json.dumps({"error": f"cffi module missing: {exc}"}).encode())
        os._exit(1)
    threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    start = time.perf_counter()
    handle = lib.savd_rtr_start(args.host.encode(), args.port.encode(), 3600, 7200, 600)
    if handle == ffi.NULL:
        _emit(b"S", json.dumps({"error": "rtr_mgr_init/start failed"}).encode())
        os._exit(1)
    deadline = start + args.timeout
    while not lib.savd_rtr_in_sync(handle):
        if time.perf_counter() > deadline:
            _emit(b"S", json.dumps({"error": f"not in sync after {args.timeout} s"}).encode())
            os._exit(1)
        time.sleep(0.001)
    sync_s = time.perf_counter() - start
    rss = peak_rss_kib()
    _emit(b"S", json.dumps({"sync_s": sync_s, "peak_rss_kib": rss}).encode())
    last = -1
    while True:
        updates = lib.savd_rtr_updates(handle)
        if updates != last and lib.savd_rtr_in_sync(handle):
            time.sleep(0.05)
            if lib.savd_rtr_updates(handle) == updates:  # quiet: rtrlib applies updates one by one
                _emit(b"D", _frame_keys(lib, ffi, handle))
                last = updates
                if args.mode == "once":
                    os._exit(0)  # rtr_mgr_stop/free abort in 0.8
        time.sleep(0.1)


def _frame_keys(lib: Any, ffi: Any, handle: Any) -> bytes:
    size = lib.savd_rtr_size(handle) + 4096  # room for records arriving between the two calls
    buf = ffi.new("unsigned char[]", size)
    v4_used = ffi.new("size_t *")
    used = min(lib.savd_rtr_dump(handle, buf, size, v4_used), size)
    return struct.pack(">I", min(v4_used[0], used)) + bytes(ffi.buffer(buf, used))


def peak_rss_kib() -> int:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that over fork and exec, so a
    child of a big parent would report the parent's peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _exit_when_parent_goes() -> None:
    sys.stdin.buffer.read()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
