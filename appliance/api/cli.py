"""`savd api …`: the HTTP API from the command line (CLI parity), printing the API's JSON.

    savd api [--config FILE | --url URL] [--token TOKEN] RESOURCE …
      health | topology | rpki | alarms [--type T] | counters [--router R] [--interface I]
      events [--since N] [--limit N] [--type T …] [--severity S] [--alarms-only]
      reports list [--router R] [--interface I] | reports add ROUTER INTERFACE PREFIX [--subnet S]
        [--anycast] [--special] [--multihomed] | reports delete ROUTER INTERFACE PREFIX
      rules [--router R] | rules ROUTER INTERFACE | explain ROUTER INTERFACE SOURCE
      trace SOURCE [--router R]
      flowspec [PEER]

The address and token come from --config (its [api] section), else --url/--token, else the
environment (SAVD_API_URL, SAVD_API_TOKEN), else http://127.0.0.1:8180 without a token. Exit codes:
0 for a 2xx answer, 1 for an error answer (its message on stderr), 2 when the API cannot be reached
or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx

from appliance.config import ConfigError, load_config

DEFAULT_URL = "http://127.0.0.1:8180"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("api", help="query or change a running savd through its HTTP API")
    parser.add_argument("--config", help="take the API address and token from this savd configuration")
    parser.add_argument("--url", help=f"API base URL (default $SAVD_API_URL or {DEFAULT_URL})")
    parser.add_argument("--token", help="bearer token (default $SAVD_API_TOKEN)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    sub = parser.add_subparsers(dest="resource", metavar="RESOURCE", required=True)
    for name in ("health", "topology", "rpki"):
        sub.add_parser(name)
    alarms = sub.add_parser("alarms")
    alarms.add_argument("--type", default="")
    counters = sub.add_parser("counters")
    counters.add_argument("--router", default="")
    counters.add_argument("--interface", default="")
    events = sub.add_parser("events")
    events.add_argument("--since", type=int, default=0)
    events.add_argument("--limit", type=int, default=100)
    events.add_argument("--type", action="append", default=[])
    events.add_argument("--severity", default="debug")
    events.add_argument("--alarms-only", action="store_true")
    reports = sub.add_parser("reports")
    rsub = reports.add_subparsers(dest="action", metavar="ACTION", required=True)
    rlist = rsub.add_parser("list")
    rlist.add_argument("--router", default="")
    rlist.add_argument("--interface", default="")
    for action in ("add", "delete"):
        p = rsub.add_parser(action)
        p.add_argument("router")
        p.add_argument("interface")
        p.add_argument("prefix")
        if action == "add":
            p.add_argument("--subnet", default="")
            for flag in ("anycast", "special", "multihomed"):
                p.add_argument(f"--{flag}", action="store_true")
    rules = sub.add_parser("rules")
    rules.add_argument("router", nargs="?", default="")
    rules.add_argument("interface", nargs="?", default="")
    trace = sub.add_parser("trace", help="where packets from SOURCE would be stopped")
    trace.add_argument("source", help="source address or prefix")
    trace.add_argument("--router", default="")
    explain = sub.add_parser("explain")
    explain.add_argument("router")
    explain.add_argument("interface")
    explain.add_argument("source", help="source address or prefix")
    flowspec = sub.add_parser("flowspec")
    flowspec.add_argument("peer", nargs="?", default="")
    parser.set_defaults(func=run)


def request_for(args: argparse.Namespace) -> tuple[str, str, dict[str, Any], Any]:
    """(method, path, query, JSON body) for the parsed arguments."""
    r = args.resource
    if r in ("health",):
        return "GET", "/health", {}, None
    if r in ("topology", "rpki"):
        return "GET", f"/api/v1/{r}", {}, None
    if r == "alarms":
        return "GET", "/api/v1/alarms", _drop_empty({"type": args.type}), None
    if r == "counters":
        return "GET", "/api/v1/counters", _where(args), None
    if r == "events":
        query = {"since": args.since, "limit": args.limit, "type": args.type, "severity": args.severity,
                 "alarms_only": str(args.alarms_only).lower()}
        return "GET", "/api/v1/events", _drop_empty(query), None
    if r == "reports":
        if args.action == "list":
            return "GET", "/api/v1/reports", _where(args), None
        key = {"router": args.router, "interface": args.interface, "prefix": args.prefix}
        if args.action == "delete":
            return "DELETE", "/api/v1/reports", key, None
        body = {**key, "subnet": args.subnet, "anycast": args.anycast, "special": args.special,
                "multihomed": args.multihomed}
        return "POST", "/api/v1/reports", {}, body
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
    try:
        base, token = endpoint(args)
    except ConfigError as exc:
        print(f"savd api: {exc}", file=sys.stderr)
        return 2
    method, path, query, body = request_for(args)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, base + path, params=query, json=body, headers=headers,
                                 timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(f"savd api: cannot reach {base}: {exc}", file=sys.stderr)
        return 2
    try:
        payload: Any = response.json()
    except ValueError:
        payload = response.text
    if response.is_success:
        print(json.dumps(payload, indent=2, sort_keys=True))
        return 0
    message = payload.get("message", payload) if isinstance(payload, dict) else payload
    print(f"savd api: {method} {path}: HTTP {response.status_code}: {message}", file=sys.stderr)
    return 1
