"""`savd paths show --config FILE`: the BGP paths the routers' BMP feeds give, as `savd run` would use them.

Runs the configuration's [[bmp]] stations once through the daemon's own path source (component.py) into an
in-memory store, waits until every router that connected has sent End-of-RIB for its peers (or --timeout),
and prints per router and interface the paths, with the alarms a running savd would raise (peers without an
[[engine.neighbor]], AS mismatches, malformed messages). Stop `savd run` first, or give other --listen: both
cannot listen on the same address.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from appliance.cli_common import examples
from appliance.config import ConfigError, load_config
from appliance.context import DaemonContext
from appliance.sources.paths.component import PathSource


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("paths", help="BGP paths from the routers' BMP feeds (inter-domain input)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="paths_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="listen on the [[bmp]] stations once and print the paths",
                          epilog=examples("savd paths show --config /etc/savd/savd.toml --timeout 20 --json"))
    show.add_argument("--config", type=Path, required=True,
                      help="savd TOML with [[bmp]] and [[engine.neighbor]]")
    show.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the feeds (30)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_show)


async def collect(ctx: DaemonContext, timeout_s: float) -> PathSource:
    """Run the path source until every connected router's peers sent End-of-RIB, or the timeout."""
    source = PathSource(ctx.config, ctx.config.bmp, flush_s=0.05, initial_sync_s=3600.0)
    await source.start(ctx)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while not source.tables or any(t.sweep for t in source.tables.values()):
                    await asyncio.sleep(0.2)
        await asyncio.sleep(0.2)
    finally:
        await source.stop()
    return source


def _show(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not config.bmp:
        print(f"savd paths: {args.config}: no [[bmp]] station configured", file=sys.stderr)
        return 2
    ctx = DaemonContext.standalone(config)
    try:
        source = asyncio.run(collect(ctx, args.timeout))
    except OSError as exc:
        print(f"savd paths: cannot listen: {exc}", file=sys.stderr)
        return 2
    snap = ctx.store.snapshot()
    doc: dict[str, Any] = {
        "paths": [dataclasses.asdict(p) for p in snap.paths],
        "peers": [{"router": r, "peer": p, "interface": t.neighbor.interface, "asn": t.neighbor.asn,
                   "relationship": str(t.neighbor.relationship), "paths": len(t.paths), "synced": not t.sweep}
                  for (r, p), t in sorted(source.tables.items())],
        "ignored_routes": source.ignored,
        "alarms": [a.to_dict() for a in ctx.monitor.alarms.active()],
    }
    if args.json:
        print(json.dumps(doc, indent=1, sort_keys=True))
        return 0
    print(f"peers ({len(doc['peers'])})")
    for peer in doc["peers"]:
        synced = "" if peer["synced"] else " (no End-of-RIB)"
        print(f"  {peer['router']}:{peer['interface']:<10} {peer['peer']:<20} AS{peer['asn']:<8} "
              f"{peer['relationship']:<12} {peer['paths']} paths{synced}")
    print(f"paths ({len(snap.paths)})")
    for p in snap.paths:
        as_set = f" {{{','.join(map(str, p.as_set))}}}" if p.as_set else ""
        print(f"  {p.router}:{p.interface:<10} {p.prefix:<24} {' '.join(map(str, p.as_path))}{as_set}")
    for kind, count in sorted(source.ignored.items()):
        print(f"ignored: {count} routes ({kind})")
    for alarm in doc["alarms"]:
        print(f"ALARM {alarm['type']}: {alarm['message']}")
    return 1 if doc["alarms"] else 0
