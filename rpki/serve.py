"""`savd rpki serve FILE.json`: StayRTR on loopback serving a JSON file, in the foreground (labs, demos).

Wraps `rpki.localcache.LocalStayRtr` (the runner tests and the demo use): checks the file first (JSON
with a `roas` list, as StayRTR and rpki-client write it; `savd lab init` writes one), starts StayRTR on
127.0.0.1:PORT, prints the port and the log path, and waits until Ctrl-C or SIGTERM, then stops it.
StayRTR re-reads the file every `refresh_s` seconds, so editing it changes what savd gets.
Exit codes: 0 stopped by a signal, 1 StayRTR exited or did not start, 2 bad file or arguments.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from rpki.localcache import LocalStayRtr


def check_file(path: Path) -> tuple[int, int]:
    """(ROAs, ASPAs) in a StayRTR JSON file; ValueError saying what is wrong."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("roas"), list):
        raise ValueError(f"{path}: no \"roas\" list (StayRTR's input: {{\"roas\": [{{\"prefix\", "
                         "\"maxLength\", \"asn\"}], \"provider_authorizations\": ...}})")
    pas = doc.get("provider_authorizations") or {}
    aspas = len(pas.get("ipv4", [])) if isinstance(pas, dict) else 0
    return len(doc["roas"]), aspas


def serve(source: Path | None, *, port: int = 8282, rtr_version: int = 2, refresh_s: int = 1) -> int:
    if source is None:
        print("savd rpki serve: give the JSON file to serve (e.g. the rpki.json `savd lab init` wrote)",
              file=sys.stderr)
        return 2
    try:
        roas, aspas = check_file(source)
    except ValueError as exc:
        print(f"savd rpki serve: {exc}", file=sys.stderr)
        return 2
    try:
        cache = LocalStayRtr(source.resolve(), refresh_s=refresh_s, protocol=rtr_version, port=port)
        cache.start()
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        print(f"savd rpki serve: {exc}", file=sys.stderr)
        return 1
    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGTERM, on_signal)
    print(f"StayRTR serving {source} ({roas} ROAs, {aspas} ASPAs) on 127.0.0.1:{cache.port} "
          f"(RTR up to v{rtr_version}, pid {cache.proc.pid if cache.proc else '?'}, log {cache.log_path}); "
          "Ctrl-C stops it", flush=True)
    code = 0
    try:
        while not stop:
            if cache.proc is None or cache.proc.poll() is not None:
                print(f"savd rpki serve: StayRTR exited; log {cache.log_path}", file=sys.stderr)
                code = 1
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        cache.stop()
        signal.signal(signal.SIGTERM, previous)
    return code
