"""`savd api …`: the HTTP API from the command line (CLI parity), printing the API's JSON.

    savd api [--config FILE | --url URL] [--token TOKEN] RESOURCE …
      health | topology | rpki | alarms [--type T] | counters [--router R] [--interface I]
      events [--since N] [--limit N] [--type T …] [--severity S] [--alarms-only] [--category C …]
        [--router R] [--interface I] [--follow [--count N]]
      traces [--router R] [--interface I] [--since T] [--top N] [--json]
      reports list [--router R] [--interface I] | reports add ROUTER INTERFACE PREFIX [--subnet S]
        [--anycast] [--special] [--multihomed] | reports delete ROUTER INTERFACE PREFIX
      rules [--router R] | rules ROUTER INTERFACE | explain ROUTER INTERFACE SOURCE
      trace SOURCE [--router R]
      flowspec [PEER]

The address and token come from --config (its [api] section), else --url/--token, else the
environment (SAVD_API_URL, SAVD_API_TOKEN), else http://127.0.0.1:8180 without a token. Exit codes
(appliance/errors.py): 0 for a 2xx answer, 1 for an error answer (its message on stderr), 2 when the
arguments or the configuration are wrong, 5 when the API cannot be reached.

`events --follow` reads GET /api/v1/events/stream and prints each event as one JSON line as it comes;
when the connection drops it reconnects with Last-Event-ID, so nothing still in savd's ring is missed
(a `dropped` notice on stderr says what was). `traces` prints a table unless --json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx

from appliance.cli_common import RAW, examples
from appliance.config import load_config
from appliance.errors import ExitCode

DEFAULT_URL = "http://127.0.0.1:8180"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    raw = RAW
    parser = subparsers.add_parser(
        "api", help="query or change a running savd through its HTTP API", formatter_class=raw,
        description="Query or change a running savd through its HTTP API and print the JSON answer.",
        epilog=examples("savd api health", "savd api --config /etc/savd/savd.toml rules r1",
                        "savd api --token $TOKEN reports add r1 eth1 198.18.1.0/24",
                        "savd api trace 198.18.1.10")
        + "\n\nexit codes: 0 a 2xx answer, 1 an error answer (its message on stderr),\n"
          "  2 bad arguments or configuration, 5 the API cannot be reached")
    parser.add_argument("--config", help="take the API address and token from this savd configuration")
    parser.add_argument("--url", help=f"API base URL (default $SAVD_API_URL or {DEFAULT_URL})")
    parser.add_argument("--token", help="bearer token (default $SAVD_API_TOKEN)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    sub = parser.add_subparsers(dest="resource", metavar="RESOURCE", required=True)

    def resource(name: str, help: str, *example_lines: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, formatter_class=raw,
                              description=help[0].upper() + help[1:] + ".", epilog=examples(*example_lines))

    resource("health", "liveness and component status", "savd api health")
    resource("topology", "the routers and interfaces savd has learnt", "savd api topology")
    resource("rpki", "RPKI data: caches, VRP and ASPA counts", "savd api rpki")
    collab = resource("collaboration", "collaborating ASes: agreements and the allowances their SAV-specific "
                      "information gave; --end revokes one", "savd api collaboration",
                      "savd api collaboration --end as2.example",
                      "savd api collaboration --allow as2.example")
    either = collab.add_mutually_exclusive_group()
    either.add_argument("--end", metavar="PEER", default="",
                      help="revoke the collaboration with PEER: its agreement ends, its allowances are "
                           "withdrawn, no new agreement until --allow")
    either.add_argument("--allow", metavar="PEER", default="", help="undo --end: agreements with PEER again")
    alarms = resource("alarms", "active alarms", "savd api alarms", "savd api alarms --type spoofing")
    alarms.add_argument("--type", default="", help="only alarms of this type")
    counters = resource("counters", "enforcer counters per rule", "savd api counters --router r1",
                        "savd api counters --router r1 --interface eth1")
    counters.add_argument("--router", default="", help="only this router")
    counters.add_argument("--interface", default="", help="only this interface (with --router)")
    events = resource("events", "the event log, oldest first from --since; --follow streams new ones",
                      "savd api events --limit 20", "savd api events --alarms-only --severity warning",
                      "savd api events --follow --category nsf-event --router r1")
    events.add_argument("--since", type=int, default=0, help="events after this sequence number")
    events.add_argument("--limit", type=int, default=100, help="at most this many events")
    events.add_argument("--type", action="append", default=[], help="only this event type (repeatable)")
    events.add_argument("--severity", default="debug", help="lowest severity shown")
    events.add_argument("--alarms-only", action="store_true", help="only events that raise or clear alarms")
    events.add_argument("--category", action="append", default=[],
                        help="only this category (system-alarm, system-event, nsf-event, ...; repeatable)")
    events.add_argument("--router", default="", help="only events about this router")
    events.add_argument("--interface", default="", help="only events about this interface")
    events.add_argument("--follow", action="store_true",
                        help="stream events as they happen (server-sent events), one JSON line each")
    events.add_argument("--count", type=int, default=0, help="with --follow: stop after this many events")
    traces = resource("traces", "where spoofed traffic enters: router, interface, upstream, top sources",
                      "savd api traces", "savd api traces --router r1 --interface eth1 --top 5",
                      "savd api traces --json")
    traces.add_argument("--router", default="", help="only this router")
    traces.add_argument("--interface", default="", help="only this interface")
    traces.add_argument("--since", type=float, default=0.0, help="only traffic from this Unix time on")
    traces.add_argument("--top", type=int, default=10, help="source prefixes per interface")
    traces.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    reports = resource("reports", "source-prefix reports: list, add or delete (ACTION)",
                       "savd api reports list",
                       "savd api reports add r1 eth1 198.18.1.0/24 --multihomed",
                       "savd api reports delete r1 eth1 198.18.1.0/24")
    rsub = reports.add_subparsers(dest="action", metavar="ACTION", required=True)
    rlist = rsub.add_parser("list", help="the reports, from every source", formatter_class=raw,
                            epilog=examples("savd api reports list --router r1"))
    rlist.add_argument("--router", default="", help="only this router")
    rlist.add_argument("--interface", default="", help="only this interface")
    for action, help_text, example in (
        ("add", "add or replace the API's report for ROUTER INTERFACE PREFIX",
         "savd api reports add r1 eth1 198.18.1.0/24 --subnet 1 --multihomed"),
        ("delete", "delete the API's report for ROUTER INTERFACE PREFIX",
         "savd api reports delete r1 eth1 198.18.1.0/24"),
    ):
        p = rsub.add_parser(action, help=help_text, formatter_class=raw, epilog=examples(example))
        p.add_argument("router", help="router name")
        p.add_argument("interface", help="interface name on that router")
        p.add_argument("prefix", help="source prefix, e.g. 198.18.1.0/24")
        if action == "add":
            p.add_argument("--subnet", default="", help="subnet id grouping prefixes of one customer")
            for flag, what in (("anycast", "the prefix is anycast"), ("special", "special-purpose prefix"),
                               ("multihomed", "the subnet is attached at several interfaces")):
                p.add_argument(f"--{flag}", action="store_true", help=what)
    _steering_resources(resource)
    rules = resource("rules", "the computed SAV rules, all or one interface's", "savd api rules",
                     "savd api rules r1", "savd api rules r1 eth1")
    rules.add_argument("router", nargs="?", default="", help="only this router")
    rules.add_argument("interface", nargs="?", default="", help="one interface's rules (with ROUTER)")
    trace = resource("trace", "where packets from SOURCE would be stopped", "savd api trace 198.18.1.10",
                     "savd api trace 2001:db8::1 --router r2")
    trace.add_argument("source", help="source address or prefix")
    trace.add_argument("--router", default="", help="only this router")
    explain = resource("explain", "why ROUTER INTERFACE allows or blocks SOURCE",
                       "savd api explain r1 eth1 198.18.1.10")
    explain.add_argument("router", help="router name")
    explain.add_argument("interface", help="interface name")
    explain.add_argument("source", help="source address or prefix")
    flowspec = resource("flowspec", "the FlowSpec pushed to each peer", "savd api flowspec",
                        "savd api flowspec 198.18.0.2")
    flowspec.add_argument("peer", nargs="?", default="", help="only this peer")
    parser.set_defaults(func=run)


def _steering_resources(resource: Callable[..., argparse.ArgumentParser]) -> None:
    """`suspects` and `inspectors` (steering: docs/design.md#steering), each with its ACTIONs."""
    suspects = resource("suspects", "suspicious source prefixes steered through inspectors (ACTION)",
                        "savd api suspects list", "savd api suspects add 198.18.1.7/32 --reason 'ids: scan'",
                        "savd api suspects delete 198.18.1.7/32")
    ssub = suspects.add_subparsers(dest="action", metavar="ACTION", required=True)
    ssub.add_parser("list", help="the suspects", formatter_class=RAW,
                    epilog=examples("savd api suspects list"))
    for action, help_text in (("add", "flag PREFIX as suspicious: steered through an inspector"),
                              ("delete", "PREFIX is no longer suspicious")):
        p = ssub.add_parser(action, help=help_text, formatter_class=RAW,
                            epilog=examples(f"savd api suspects {action} 198.18.1.7/32 --router r1"))
        p.add_argument("prefix", help="source prefix, e.g. 198.18.1.7/32")
        p.add_argument("--router", default="", help="only on this router (default: every router)")
        if action == "add":
            p.add_argument("--reason", default="", help="why (shown with the steering)")
    inspectors = resource("inspectors", "inspection function instances and their load (ACTION)",
                          "savd api inspectors list",
                          "savd api inspectors add dpi-1 198.18.80.2 --capacity 100",
                          "savd api inspectors load dpi-1 42", "savd api inspectors delete dpi-1")
    isub = inspectors.add_subparsers(dest="action", metavar="ACTION", required=True)
    isub.add_parser("list", help="the inspectors, load and ratio", formatter_class=RAW,
                    epilog=examples("savd api inspectors list"))
    add = isub.add_parser("add", help="register or update NAME at ADDRESS", formatter_class=RAW,
                          epilog=examples("savd api inspectors add dpi-1 198.18.80.2 --capacity 100"))
    add.add_argument("name", help="instance name")
    add.add_argument("address", help="its address: the redirect next hop")
    add.add_argument("--capacity", type=float, required=True, help="the unit of its load reports (> 0)")
    load = isub.add_parser("load", help="report NAME's LOAD (in its capacity's unit)", formatter_class=RAW,
                           epilog=examples("savd api inspectors load dpi-1 42"))
    load.add_argument("name", help="instance name")
    load.add_argument("load", type=float, help="current load")
    delete = isub.add_parser("delete", help="remove NAME (its suspects go to another one or the fallback)",
                             formatter_class=RAW, epilog=examples("savd api inspectors delete dpi-1"))
    delete.add_argument("name", help="instance name")


def _steering_request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any], Any]:
    if args.resource == "suspects":
        if args.action == "list":
            return "GET", "/api/v1/suspects", {}, None
        key = {"prefix": args.prefix, "router": args.router}
        if args.action == "delete":
            return "DELETE", "/api/v1/suspects", _drop_empty(key), None
        return "POST", "/api/v1/suspects", {}, {**key, "reason": args.reason}
    if args.action == "list":
        return "GET", "/api/v1/inspectors", {}, None
    if args.action == "add":
        return "POST", "/api/v1/inspectors", {}, {"name": args.name, "address": args.address,
                                                   "capacity": args.capacity}
    if args.action == "load":
        return "POST", f"/api/v1/inspectors/{args.name}/load", {}, {"load": args.load}
    return "DELETE", f"/api/v1/inspectors/{args.name}", {}, None


def request_for(args: argparse.Namespace) -> tuple[str, str, dict[str, Any], Any]:
    """(method, path, query, JSON body) for the parsed arguments."""
    r = args.resource
    if r in ("health",):
        return "GET", "/health", {}, None
    if r == "collaboration" and (args.end or args.allow):
        peer, action = (args.end, "end") if args.end else (args.allow, "allow")
        return "POST", f"/api/v1/collaboration/{peer}/{action}", {}, None
    if r in ("topology", "rpki", "collaboration"):
        return "GET", f"/api/v1/{r}", {}, None
    if r == "alarms":
        return "GET", "/api/v1/alarms", _drop_empty({"type": args.type}), None
    if r == "counters":
        return "GET", "/api/v1/counters", _where(args), None
    if r == "events":
        query = {"since": args.since, "limit": args.limit, "type": args.type, "severity": args.severity,
                 "alarms_only": str(args.alarms_only).lower(), "category": args.category,
                 "router": args.router, "interface": args.interface}
        if args.follow:
            del query["limit"]
            return "GET", "/api/v1/events/stream", _drop_empty(query), None
        return "GET", "/api/v1/events", _drop_empty(query), None
    if r == "traces":
        query = {"router": args.router, "interface": args.interface, "since": args.since or "",
                 "top": args.top}
        return "GET", "/api/v1/traces", _drop_empty(query), None
    if r == "reports":
        if args.action == "list":
            return "GET", "/api/v1/reports", _where(args), None
        key = {"router": args.router, "interface": args.interface, "prefix": args.prefix}
        if args.action == "delete":
            return "DELETE", "/api/v1/reports", key, None
        body = {**key, "subnet": args.subnet, "anycast": args.anycast, "special": args.special,
                "multihomed": args.multihomed}
        return "POST", "/api/v1/reports", {}, body
    if r in ("suspects", "inspectors"):
        return _steering_request(args)
    if r == "rules":
        if args.interface:
            return "GET", f"/api/v1/rules/{args.router}/{args.interface}", {}, None
        return "GET", "/api/v1/rules", _drop_empty({"router": args.router}), None
    if r == "explain":
        query = {"router": args.router, "interface": args.interface, "source": args.source}
        return "GET", "/api/v1/explain", query, None
    if r == "trace":
        return "GET", "/api/v1/trace", _drop_empty({"source": args.source, "router": args.router}), None
    if r == "flowspec":
        return "GET", f"/api/v1/flowspec/{args.peer}" if args.peer else "/api/v1/flowspec", {}, None
    raise ValueError(f"unknown resource {r}")


def _where(args: argparse.Namespace) -> dict[str, Any]:
    return _drop_empty({"router": args.router, "interface": args.interface})


def _drop_empty(query: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in query.items() if v not in ("", [], None)}


def endpoint(args: argparse.Namespace) -> tuple[str, str]:
    """(base URL, token) from --config, flags or the environment."""
    if args.config:
        config = load_config(args.config)
        host = "127.0.0.1" if config.api.host in ("0.0.0.0", "::") else config.api.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{config.api.port}", args.token or config.api.token
    url = args.url or os.environ.get("SAVD_API_URL", DEFAULT_URL)
    return url.rstrip("/"), args.token or os.environ.get("SAVD_API_TOKEN", "")


def run(args: argparse.Namespace) -> int:
    base, token = endpoint(args)  # a ConfigError reaches savd's main: one line, exit 2
    method, path, query, body = request_for(args)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if path.endswith("/stream"):
        return follow(base + path, query, headers, args.count)
    try:
        response = httpx.request(method, base + path, params=query, json=body, headers=headers,
                                 timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(f"savd api: cannot reach {base}: {exc}", file=sys.stderr)
        return ExitCode.EXTERNAL
    try:
        payload: Any = response.json()
    except ValueError:
        payload = response.text
    if response.is_success:
        if args.resource == "traces" and not args.json and isinstance(payload, dict):
            print(traces_table(payload), end="")
        else:
            print(json.dumps(payload, indent=2, sort_keys=True))
        return 0
    message = payload.get("message", payload) if isinstance(payload, dict) else payload
    print(f"savd api: {method} {path}: HTTP {response.status_code}: {message}", file=sys.stderr)
    return 1


def follow(url: str, query: dict[str, Any], headers: dict[str, str], count: int = 0) -> int:
    """Print the stream's events as JSON lines until interrupted (or `count` events); reconnect with
    Last-Event-ID when the connection drops. Exit 1 on an error answer, 5 when savd cannot be reached at
    the start."""
    last_id, printed, connected = "", 0, False
    while True:
        sent = {**headers, **({"Last-Event-ID": last_id} if last_id else {})}
        try:
            with httpx.stream("GET", url, params=query, headers=sent,
                              timeout=httpx.Timeout(10.0, read=None)) as response:
                if not response.is_success:
                    response.read()
                    print(f"savd api: GET {url}: HTTP {response.status_code}: {response.text}",
                          file=sys.stderr)
                    return 1
                connected = True
                for kind, id_, data in sse_messages(response.iter_lines()):
                    last_id = id_ or last_id
                    if kind == "dropped":
                        print(f"savd api: events dropped: {data}", file=sys.stderr)
                    elif kind == "message":
                        print(data, flush=True)
                        printed += 1
                        if count and printed >= count:
                            return 0
        except KeyboardInterrupt:
            return 0
        except httpx.HTTPError as exc:
            if not connected:
                print(f"savd api: cannot reach {url}: {exc}", file=sys.stderr)
                return ExitCode.EXTERNAL
            print(f"savd api: stream lost ({exc}); reconnecting after event {last_id or 0}", file=sys.stderr)
            time.sleep(1.0)


def sse_messages(lines: Iterable[str]) -> Iterator[tuple[str, str, str]]:
    """(event, id, data) per server-sent events message; comments and `retry` are skipped."""
    kind, id_, data = "message", "", list[str]()
    for line in lines:
        if not line:
            if data:
                yield kind, id_, "\n".join(data)
            kind, id_, data = "message", "", list[str]()
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            kind = value
        elif name == "id":
            id_ = value
        elif name == "data":
            data.append(value)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if t else "-"


def _upstream(u: dict[str, Any]) -> str:
    if u["kind"] == "internal":
        return f"router {u['router']} ({u['address']})" if u["address"] else f"router {u['router']}"
    if u["kind"] == "external":
        who = f"AS{u['asn']}" if u.get("asn") is not None else "eBGP peer"
        extra = ", ".join(x for x in (u["address"], u["relationship"]) if x)
        return f"{who} ({extra})" if extra else who
    return "hosts (access interface)" if u["kind"] == "access" else "unknown"


def traces_table(doc: dict[str, Any]) -> str:
    """GET /api/v1/traces as text: one block per interface, its top sources with a per-bucket series."""
    traces = doc.get("traces") or []
    if not traces:
        return "no spoofed traffic seen in the last {:.0f} minutes\n".format(doc.get("window_s", 3600) / 60)
    bucket = doc.get("bucket_s", 60)
    out = []
    for t in traces:
        ups = "; ".join(_upstream(u) for u in t["upstream"]) or "-"
        out.append(f"{t['router']} {t['interface']}  from {ups}\n"
                   f"  {t['packets']} packets, {t['bytes']} bytes dropped, {_when(t['first_seen'])} .. "
                   f"{_when(t['last_seen'])}, {t['source_count']} spoofed source prefix(es)\n")
        out.append(f"  {'SOURCE PREFIX':<43} {'PACKETS':>9} {'BYTES':>11}  {'LAST SEEN':<20}  "
                   f"PACKETS PER {bucket:.0f} S (oldest first)\n")
        for s in t["sources"]:
            series = " ".join(str(b["packets"]) for b in s["series"][-12:])
            out.append(f"  {s['prefix']:<43} {s['packets']:>9} {s['bytes']:>11}  "
                       f"{_when(s['last_seen']):<20}  {series}\n")
        out.append("\n")
    return "".join(out)
