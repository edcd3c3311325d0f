"""`savd rpki status | dump [--json]`: connect to caches and files, sync once, print status or data;
`savd rpki serve FILE.json`: a local StayRTR for labs (rpki/serve.py).

The command is an operator's probe: it runs the same RtrManager, FileWatcher and tables as the
appliance, waits for the first sync (or --timeout), prints, and exits. Exit code 0 when some source has
data, 1 when none synced, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from rpki.files import FileWatcher
from rpki.rtr.manager import RtrManager
from rpki.rtr.session import CacheConfig, CacheStatus
from rpki.serve import serve
from rpki.tables import RpkiTables


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "rpki", help="RPKI caches (RTR v0-v2) and relying-party files; serve a JSON file over RTR",
        description="status|dump: connect to caches and files, sync once, print. serve FILE.json: run a "
        "local StayRTR on 127.0.0.1 serving FILE.json (roas, provider_authorizations; re-read every "
        "--refresh seconds) in the foreground until Ctrl-C; prints the port. Example: savd rpki serve "
        "lab/rpki.json --port 8282")
    parser.add_argument("action", choices=("status", "dump", "serve"))
    parser.add_argument("source", nargs="?", type=Path, help="serve: the JSON file StayRTR serves")
    parser.add_argument("--port", type=int, default=8282, help="serve: RTR port on 127.0.0.1 (default 8282)")
    parser.add_argument("--refresh", type=int, default=1,
                        help="serve: seconds between file reads (default 1)")
    parser.add_argument("--cache", action="append", default=[], metavar="HOST:PORT[@PREF]",
                        help="RTR cache; repeat for several (lower preference wins)")
    parser.add_argument("--file", action="append", default=[], metavar="PATH",
                        help="rpki-client / Routinator JSON or VRP CSV; repeatable")
    parser.add_argument("--rtr-version", type=int, choices=(0, 1, 2), default=2,
                        help="highest RTR version to offer (default 2)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a sync")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "serve":
        return serve(args.source, port=args.port, rtr_version=args.rtr_version, refresh_s=args.refresh)
    if not args.cache and not args.file:
        print("savd rpki: give at least one --cache or --file", file=sys.stderr)
        return 2
    try:
        caches = [CacheConfig.parse(c, max_version=args.rtr_version) for c in args.cache]
    except ValueError as exc:
        print(f"savd rpki: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, caches))


async def _run(args: argparse.Namespace, caches: list[CacheConfig]) -> int:
    tables = RpkiTables()
    watcher = FileWatcher(args.file, tables) if args.file else None
    if watcher is not None:
        watcher.poll()
    manager = RtrManager(caches, tables) if caches else None
    synced = False
    statuses: list[CacheStatus] = []
    if manager is not None:
        await manager.start()
        try:
            synced = await manager.wait_synced(args.timeout)
            statuses = manager.status()  # before stop(), which marks every session stopped
        finally:
            await manager.stop()
    has_data = tables.counts()["vrp"] > 0 or tables.counts()["aspa"] > 0
    if args.action == "status":
        _print_status(args.json, statuses, watcher, tables)
    else:
        _print_dump(args.json, tables)
    return 0 if (synced or has_data) else 1


def _print_status(as_json: bool, statuses: list[CacheStatus], watcher: FileWatcher | None,
                  tables: RpkiTables) -> None:
    files = watcher.status() if watcher else []
    if as_json:
        doc = {"caches": [s.to_dict() for s in statuses], "files": files, "tables": tables.counts()}
        print(json.dumps(doc, indent=2, sort_keys=True))
        return
    for s in statuses:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s.last_update)) if s.last_update else "never"
        print(f"cache {s.name} pref {s.preference}{' (active)' if s.active else ''}: {s.state}")
        print(f"  version {s.version} session {s.session_id} serial {s.serial} last update {when}")
        print(f"  vrps {s.vrps} aspas {s.aspas} refresh {s.refresh_s:g}s retry {s.retry_s:g}s "
              f"expire {s.expire_s:g}s")
        if s.last_error:
            print(f"  last error: {s.last_error}")
    for f in files:
        print(f"file {f['path']}: {f['error'] or 'ok'}")
    c = tables.counts()
    print(f"tables: version {c['version']} vrps {c['vrp']} (v4 {c['vrp_v4']}, v6 {c['vrp_v6']}) "
          f"aspas {c['aspa']}")


def _print_dump(as_json: bool, tables: RpkiTables) -> None:
    snap = tables.snapshot()
    if as_json:
        doc = {
            "version": snap.version,
            "roas": [{"prefix": v.prefix, "maxLength": v.max_length, "asn": v.asn} for v in snap.vrps],
            "aspas": [{"customer_asid": a.customer, "providers": list(a.providers)} for a in snap.aspas],
        }
        print(json.dumps(doc, indent=1))
        return
    for v in snap.vrps:
        print(f"{v.prefix}-{v.max_length} AS{v.asn}")
    for a in snap.aspas:
        print(f"ASPA AS{a.customer} -> {' '.join(f'AS{p}' for p in a.providers)}")
