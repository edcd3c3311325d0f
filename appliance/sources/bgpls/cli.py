"""`savd topology show [--json]`: the learned graph and the source-prefix reports.

Until the daemon serves it, `show` runs a one-shot collection: it starts ExaBGP for the configured
speakers (listen mode, bgp-ls family only), waits for End-of-RIB from every BGP-LS peer (or --timeout),
stops it and prints. `--frr-json FILE` reads an FRR `show bgp link-state link-state json` table instead
(offline). Reports and roles: BGP-LS route tags and border links (reports/tags.py) + the store in
--data-dir + --reports FILE, through the same store and resolution as `savd run` (sources/assemble.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from appliance.config import Config, load_config
from appliance.model import Router
from appliance.sources import assemble
from appliance.sources.bgpls.decode import LsAnnounce
from appliance.sources.bgpls.frr_ls import items_from_frr_table
from appliance.sources.bgpls.graph import Topology
from appliance.sources.bgpls.ingest import TOPOLOGY_KINDS, TopologyIngest, model_facts
from appliance.sources.reports.cli import load_sources, print_resolved, resolved_to_dict
from appliance.sources.reports.errors import ReportError
from appliance.sources.reports.merge import Resolved
from appliance.speakers.exabgp import ExaBgpSpeaker, ExaNeighbor, SpeakerError
from appliance.state import StateStore
from appliance.state.changes import ReplaceSource


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("topology", help="the topology learned over BGP-LS")
    sub = p.add_subparsers(dest="topology_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="print routers, interfaces, links, prefixes and reports")
    src = show.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", type=Path, help="appliance TOML: collect once from its ExaBGP speakers")
    src.add_argument("--frr-json", type=Path, help="an FRR 'show bgp link-state link-state json' table")
    show.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for End-of-RIB")
    show.add_argument(
        "--reports", type=Path, help="declarative report file (default: the config's [reports] file)"
    )
    show.add_argument("--data-dir", type=Path, help="report store folder (default: the config's data_dir)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)


def view(topology: Topology, routers: tuple[Router, ...], resolved: Resolved) -> dict[str, Any]:
    """Graph + reports as one JSON-ready document; routers carry their resolved role/capability."""
    doc = topology.to_dict()
    doc["routers"] = [
        {
            "name": r.name,
            "router_id": r.router_id,
            "asn": r.asn,
            "role": r.role.value,
            "capability": r.capability.value,
        }
        for r in routers
    ]
    doc["reports"] = resolved_to_dict(resolved)
    return doc


def print_view(doc: dict[str, Any], resolved: Resolved) -> None:
    print(f"routers ({len(doc['routers'])})")
    for r in doc["routers"]:
        print(
            f"  {r['name']:<12} router-id {r['router_id']:<15} as {r['asn']:<6} role {r['role']:<7} "
            f"capability {r['capability']}"
        )
    print(f"interfaces ({len(doc['interfaces'])})")
    for i in doc["interfaces"]:
        ext = "  external" if i["external"] else ""
        print(f"  {i['router']}:{i['name']:<10} {' '.join(i['addresses'])}{ext}")
    print(f"links ({len(doc['links'])})")
    for lk in doc["links"]:
        print(
            f"  {lk['local']} {lk['local_address']} -> {lk['remote']} {lk['remote_address']}  metric "
            f"{lk['metric']}  {'border' if lk['border'] else 'internal'}"
        )
    print(f"prefixes ({len(doc['prefixes'])})")
    for p in doc["prefixes"]:
        tags = f"  tags {','.join(hex(t) for t in p['route_tags'])}" if p["route_tags"] else ""
        print(f"  {p['router']:<12} {p['prefix']:<22} metric {p['metric']}{tags}")
    print_resolved(resolved)


async def collect(config_path: Path, timeout_s: float) -> Topology:
    """Start the configured ExaBGP speakers once, wait for every BGP-LS peer's End-of-RIB, stop."""
    from appliance.config import Family, SpeakerType, load_config

    cfg = load_config(config_path)
    ingest = TopologyIngest()
    speakers: list[ExaBgpSpeaker] = []
    wanted: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="savd-topology-") as tmp:
        try:
            for sc in cfg.speakers:
                if sc.type is not SpeakerType.EXABGP:
                    continue
                peers = [
                    ExaNeighbor(
                        p.address,
                        p.local_address or sc.listen_host,
                        sc.asn,
                        p.asn,
                        sc.router_id,
                        ("bgp-ls bgp-ls",),
                        passive=True,
                        name=p.router,
                    )
                    for p in sc.peers
                    if Family.BGP_LS in p.families
                ]
                if not peers:
                    continue
                wanted.update(p.address for p in peers)
                sp = ExaBgpSpeaker(
                    Path(tmp) / sc.name,
                    peers,
                    netns=sc.netns or None,
                    listen=(sc.listen_host, sc.listen_port) if sc.listen_host else None,
                )
                await sp.start()
                speakers.append(sp)
            queue: asyncio.Queue[Any] = asyncio.Queue()

            async def pump(sp: ExaBgpSpeaker) -> None:
                async for ev in sp.events():
                    await queue.put(ev)

            pumps = [asyncio.create_task(pump(sp)) for sp in speakers]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    while wanted - ingest.eor_seen:
                        ev = await queue.get()
                        ingest.handle(ev)
            for t in pumps:
                t.cancel()
            missing = sorted(wanted - ingest.eor_seen)
            if missing:
                print(
                    f"savd topology: no End-of-RIB within {timeout_s:g}s from {', '.join(missing)}",
                    file=sys.stderr,
                )
        finally:
            for sp in speakers:
                await sp.stop()
    return ingest.topology


def _show(args: argparse.Namespace) -> int:
    data_dir, reports_file = args.data_dir, args.reports
    cfg: Config | None = None
    try:
        if args.frr_json:
            topo = Topology()
            items, errors = items_from_frr_table(json.loads(args.frr_json.read_text()))
            for err in errors:
                print(f"savd topology: {args.frr_json}: skipped {err}", file=sys.stderr)
            topo.apply_all(LsAnnounce(str(args.frr_json), i) for i in items)
        else:
            cfg = load_config(args.config)
            data_dir = data_dir or cfg.appliance.data_dir
            reports_file = reports_file or cfg.reports.file
            topo = asyncio.run(collect(args.config, args.timeout))
        changes = load_sources(data_dir, reports_file)
    except (OSError, ValueError, ReportError, SpeakerError) as exc:
        print(f"savd topology: {exc}", file=sys.stderr)
        return 2
    # the same facts, store and resolution as `savd run` (sources/assemble.py)
    store = StateStore()
    store.apply(ReplaceSource("bgp-ls:topology-show", TOPOLOGY_KINDS, model_facts(topo)))
    for change in changes:
        store.apply(change)
    snap = store.snapshot()
    resolved = assemble.resolved(snap)
    doc = view(topo, assemble.routers(cfg, snap, resolved), resolved)
    if args.json:
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        print_view(doc, resolved)
    return 0
