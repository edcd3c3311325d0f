"""The one filtering layer between a tenant and the API: every route has a declared tenant policy.

Why one layer: a filter written inside each handler is a filter a new handler forgets. Here the route
handlers stay as they are (the operator's answers are byte for byte what they were), and TenantGate, an
ASGI middleware inside guard.RequestGuard, serves every request that carries a tenant token:
1. it finds the route the request matches and its policy in POLICIES, keyed by (method, path
   template); a route with no policy is refused (403) for tenants, so a new endpoint is closed to them
   until someone decides what they may see there (tests/unit/daemon/test_api_tenants.py fails first);
2. REFUSE answers 403; PUBLIC passes (the OpenAPI document and /docs: no state in them);
3. FILTER runs the policy's `check` on the request (a write, or a named object, outside the scope is a
   403 before the handler runs) and its `answer` on the JSON the handler produced; STREAM filters each
   server-sent event of a stream through `event`.
What is visible is decided by scope.TenantScope's predicates only; docs/api.md lists the rules.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.routing import BaseRoute, Match, Mount, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.api.auth import GATE_MARK, Auth
from appliance.api.errors import error_response
from appliance.api.explain import EXPLAIN_OPTIONS, parse_source
from appliance.api.guard import SAFE_METHODS, _replay
from appliance.api.ports import ApiPorts
from appliance.api.scope import TenantScope
from appliance.errors import InputError, SavdError
from appliance.model import canonical_prefix

Json = Any
Key = tuple[str, str]  # (method, path template); "*" for a mount's every method


@dataclass(frozen=True, slots=True)
class Ask:
    """What the gate knows of a request: path parameters, query, and a write's JSON body (or None)."""

    method: str
    path_params: Mapping[str, Any]
    query: QueryParams
    body: Json


class Refused(InputError):
    """Raised by a check or an answer: the tenant asked for something outside its scope; it gets 403."""


Check = Callable[[TenantScope, Ask, ApiPorts], None]
Answer = Callable[[TenantScope, Ask, Json, ApiPorts], Json]
EventFilter = Callable[[TenantScope, Mapping[str, Any]], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class Policy:
    kind: Literal["filter", "refuse", "public", "stream"]
    answer: Answer | None = None
    check: Check | None = None
    event: EventFilter | None = None
    why: str = ""


def template(path: str) -> str:
    """A route path as OpenAPI writes it: "{interface:path}" -> "{interface}"."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def flat_routes(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    """(path prefix, route) of every route, in the order the app tries them: routers included with
    `include_router` are walked into (FastAPI keeps them as one route wrapping the router)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from flat_routes(inner.routes, prefix + str(getattr(context, "prefix", "")))
        else:
            yield prefix, route


def route_keys(routes: Sequence[BaseRoute]) -> list[Key]:
    """Every (method, template) the routes answer; HEAD goes with GET."""
    keys: list[Key] = []
    for prefix, route in flat_routes(routes):
        path = prefix + template(str(getattr(route, "path", "")))
        if isinstance(route, Mount):
            keys.append(("*", path))
        elif isinstance(route, WebSocketRoute):
            keys.append(("WS", path))
        else:
            methods = getattr(route, "methods", None) or {"*"}
            keys += [(m, path) for m in sorted(methods) if m != "HEAD"]
    return keys


# --- the predicates, applied to answers ------------------------------------------------------------------

#: event and alarm fields a tenant may see (values are names, prefixes it may see, numbers, flags);
#: any other field, whatever a producer adds later, is dropped
SHOWN_FIELDS = ("router", "interface", "prefix", "source_prefix", "change", "up", "active", "ok",
                "installed", "reachable", "resolved", "refused", "stale", "expired", "cleared", "packets",
                "bytes", "announced", "withdrawn")
#: record keys a tenant may see; `source` is cut to its component, `message` rebuilt, `id` made opaque
SHOWN_KEYS = ("seq", "id", "time", "source", "severity", "category", "router", "interface", "prefix", "type",
              "message", "raised_at", "last_at", "count", "fields", "alarm", "acked_at")
_ALWAYS_ALLOWED = frozenset(EXPLAIN_OPTIONS.always_allowed)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def record_in_scope(scope: TenantScope, record: Mapping[str, Any]) -> bool:
    """An event or alarm concerns the tenant: it names a router, interface or prefix, and each one it
    names (at top level or in its fields) is in scope. Records about nothing in particular (RPKI caches,
    the journal, the daemon) concern the operator only."""
    fields = record.get("fields")
    fields = fields if isinstance(fields, Mapping) else {}
    router = _str(record.get("router")) or _str(fields.get("router"))
    interface = _str(record.get("interface")) or _str(fields.get("interface"))
    prefixes = {p for p in (_str(record.get("prefix")), _str(fields.get("prefix")),
                            _str(fields.get("source_prefix"))) if p}
    if not (router or interface or prefixes):
        return False
    if interface and not (router and scope.interface(router, interface)):
        return False
    if router and not scope.router(router):
        return False
    return all(scope.source(p) for p in prefixes)


def tenant_record(scope: TenantScope, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The tenant's view of an event or alarm record, or None when it does not concern the tenant.
    Free text (message, reasons, details) may name anything, so the message is rebuilt from the fields
    shown; the alarm id (which names speakers and peers) becomes an opaque, stable token."""
    if not record_in_scope(scope, record):
        return None
    fields = record.get("fields")
    given = fields.items() if isinstance(fields, Mapping) else ()
    shown = {k: str(v) for k, v in given if k in SHOWN_FIELDS}
    out = {k: record[k] for k in SHOWN_KEYS if k in record}
    out["source"] = _str(record.get("source")).split(":", 1)[0]
    out["message"] = " ".join([_str(record.get("type")), *(f"{k}={v}" for k, v in shown.items())])
    out["fields"] = shown
    if "id" in record:
        digest = hashlib.sha256(f"{scope.name}\0{record['id']}".encode()).hexdigest()[:16]
        out["id"] = f"alarm-{digest}"
    return out


def provenance_entry(scope: TenantScope, entry: str, interface: str) -> str:
    """One justification, whole when everything it names is in scope, else only its kind ("report").
    The " via <source>" of a path or report names savd's feeds (speakers, peers, files): always cut."""
    text = entry.split(" via ", 1)[0]
    kind, _, rest = text.partition(":")
    ok = False
    if kind == "algorithm":
        ok = True
    elif kind == "report":
        router, _, iface = rest.rpartition("@")[2].rpartition(":")
        ok = scope.interface(router, iface)
    elif kind == "roa":
        ok = scope.prefix(rest.split("-", 1)[0])
    elif kind == "path":
        ok = rest.split(":", 1)[0] == interface
    elif kind == "igp":
        prefix, _, router = rest.partition("@")
        ok = scope.prefix(prefix) and scope.router(router)
    elif kind == "carved":
        ok = scope.prefix(rest.split(" ", 1)[0])
    return text if ok else kind


def tenant_rule(scope: TenantScope, rule: Mapping[str, Any]) -> dict[str, Any] | None:
    """A rule on an in-scope interface, its prefixes cut to the tenant's (other tenants' prefixes on a
    shared interface are never shown), provenance cut to the prefixes kept."""
    router, interface = _str(rule.get("router")), _str(rule.get("interface"))
    if not scope.interface(router, interface):
        return None
    kept = [p for p in rule.get("prefixes", ()) if scope.source(p)]
    provenance = rule.get("provenance") or {}
    return {**rule, "prefixes": kept,
            "provenance": {p: [provenance_entry(scope, e, interface) for e in provenance[p]]
                           for p in kept if p in provenance}}


def tenant_verdict(scope: TenantScope, verdict: Mapping[str, Any]) -> dict[str, Any]:
    """A verdict on the tenant's own source (checked before): the verdict stays true, but a prefix wider
    than the tenant's (an aggregate the compiler made, another's listed prefix) is not named: not as the
    matched prefix, not in the deciding FlowSpec rule, not in the reason."""
    out = dict(verdict)
    interface = _str(verdict.get("interface"))
    matched = _str(verdict.get("matched_prefix"))
    if matched and not scope.source(matched):
        out.update(matched_prefix="", provenance=[])
    else:
        out["provenance"] = [provenance_entry(scope, e, interface) for e in verdict.get("provenance", ())]
    if not text_in_scope(scope, _str(verdict.get("flowspec_rule"))):
        out["flowspec_rule"] = ""
    reason = _str(verdict.get("reason"))
    if reason.startswith("not filtered (fail open)"):
        out["reason"] = "not filtered (fail open)"  # the compiler's words name other interfaces' lists
    elif not text_in_scope(scope, reason):
        stopped = verdict.get("verdict") != "pass"
        out["reason"] = f"{'stopped' if stopped else 'allowed'} by a rule on a prefix wider than the tenant's"
    return out


def _held(scope: TenantScope, held: Mapping[str, str]) -> list[tuple[str, dict[str, Any]]] | None:
    """A peer's held rules the tenant may see, or None when the peer is not the tenant's: every rule
    recorded for it names a router the tenant has whole (FlowSpec rules apply to groups of a router's
    interfaces, so an interface-only scope sees none). Rules on sources outside the scope are removed,
    and so are records that are not FlowSpec rules (their router is unknown)."""
    rules: list[tuple[str, dict[str, Any], str]] = []
    for key, text in held.items():
        try:
            rule = json.loads(text)
            router, source = rule["router"], rule["match"]["source"]
        except (ValueError, TypeError, KeyError):
            continue
        if isinstance(router, str) and isinstance(source, str):
            rules.append((key, rule, source))
    if not rules or not all(scope.whole_router(r["router"]) for _, r, _ in rules):
        return None
    return [(key, rule) for key, rule, source in rules if scope.source(source)]


# --- checks (before the handler) -----------------------------------------------------------------------


def _one(ask: Ask, name: str) -> str:
    """A query parameter given at most once (a repeated one could be read differently downstream)."""
    values = ask.query.getlist(name)
    if len(values) > 1:
        raise Refused(f"{name}: give it once")
    return values[0] if values else ""


def _out(scope: TenantScope, what: str) -> Refused:
    return Refused(f"{what} is outside tenant {scope.name!r}'s scope")


def _check_place(scope: TenantScope, router: str, interface: str) -> None:
    if router and interface and not scope.interface(router, interface):
        raise _out(scope, f"{router} {interface}")


def _check_report(scope: TenantScope, router: object, interface: object, prefix: object) -> None:
    """A report the tenant writes or deletes: its interface and prefix in scope. Input the handler
    refuses anyway (not strings, not a canonical prefix: the same canonical_prefix) passes on to
    its 422."""
    if not (isinstance(router, str) and isinstance(interface, str) and isinstance(prefix, str)):
        return
    if not scope.interface(router, interface):
        raise _out(scope, f"{router} {interface}")
    try:
        canonical = canonical_prefix(prefix)
    except ValueError:
        return
    if not scope.prefix(canonical):
        raise _out(scope, f"prefix {canonical}")


def _check_post_report(scope: TenantScope, ask: Ask, ports: ApiPorts) -> None:
    body = ask.body if isinstance(ask.body, Mapping) else {}
    _check_report(scope, body.get("router"), body.get("interface"), body.get("prefix"))


def _check_delete_report(scope: TenantScope, ask: Ask, ports: ApiPorts) -> None:
    _check_report(scope, _one(ask, "router"), _one(ask, "interface"), _one(ask, "prefix"))


def _check_source(scope: TenantScope, ask: Ask, ports: ApiPorts) -> None:
    """explain and trace answer for the tenant's own sources only: a verdict on another's source, even
    "pass", would tell whether that source is listed on the tenant's interface."""
    source = _one(ask, "source")
    try:
        canonical = parse_source(source) if source else ""
    except ValueError:
        return  # the handler answers 422
    if canonical and not scope.prefix(canonical):
        raise _out(scope, f"source {canonical}")


def _check_explain(scope: TenantScope, ask: Ask, ports: ApiPorts) -> None:
    _check_place(scope, _one(ask, "router"), _one(ask, "interface"))
    _check_source(scope, ask, ports)


def _check_interface_rule(scope: TenantScope, ask: Ask, ports: ApiPorts) -> None:
    _check_place(scope, str(ask.path_params.get("router", "")), str(ask.path_params.get("interface", "")))


# --- answers (after the handler) -----------------------------------------------------------------------


def _health(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    """Minimal: status and versions; `alarms` counts the tenant's alarms; no degraded reasons."""
    mine = [a for a in ports.monitor.alarms.active() if record_in_scope(scope, a.to_dict())]
    return {"status": body["status"], "state_version": body["state_version"],
            "rules_version": body["rules_version"], "alarms": len(mine)}


def _topology(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    """Visible routers, in-scope interfaces, links whose two ends are visible (each end's address on an
    in-scope interface unless its router is whole), the tenant's IGP prefixes on visible routers,
    neighbours on in-scope interfaces, and the count of paths it could see."""
    interfaces = [i for i in body["interfaces"] if scope.interface(i["router"], i["name"])]
    addresses = {(i["router"], a.split("/")[0]) for i in interfaces for a in i["addresses"]}

    def end(router: str, address: str) -> bool:
        return scope.router(router) and (scope.whole_router(router) or (router, address) in addresses)

    snap = ports.facts.snapshot()
    return {
        "version": body["version"],
        "routers": [r for r in body["routers"] if scope.router(r["name"])],
        "interfaces": interfaces,
        "links": [lk for lk in body["links"]
                  if end(lk["local"], lk["local_address"]) and end(lk["remote"], lk["remote_address"])],
        "igp_prefixes": [p for p in body["igp_prefixes"]
                         if scope.router(p["router"]) and scope.prefix(p["prefix"])],
        "neighbors": [n for n in body["neighbors"] if scope.interface(n["router"], n["interface"])],
        "paths": sum(1 for p in snap.paths
                     if scope.interface(p.router, p.interface) and scope.prefix(p.prefix)),
    }


def _report_visible(scope: TenantScope, r: Mapping[str, Any]) -> bool:
    return scope.interface(r["router"], r["interface"]) and scope.prefix(r["prefix"])


def _reports(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    """Reports on in-scope interfaces of in-scope prefixes; `sources` cut to their kinds ("file", not
    the file's path; "bgp-ls", not the speaker and peer)."""
    return {"version": body["version"], "reports": [
        {**r, "sources": sorted({s.split(":", 1)[0] for s in r["sources"]})}
        for r in body["reports"] if _report_visible(scope, r)]}


def _written(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    """The report was checked in scope before the write; the lists are filtered all the same."""
    out = dict(body)
    for key in ("replaced", "deleted"):
        if key in out:
            out[key] = [r for r in out[key] if _report_visible(scope, r)]
    if "report" in out and not _report_visible(scope, out["report"]):
        raise _out(scope, "the report")
    return out


def _rules(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    kept = (tenant_rule(scope, r) for r in body["rules"])
    return {"version": body["version"], "rules": [r for r in kept if r is not None]}


def _interface_rule(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    rule = tenant_rule(scope, body["rule"])
    if rule is None:
        raise _out(scope, "this interface")
    return {"version": body["version"], "rule": rule}


def _explained(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    return tenant_verdict(scope, body)


def _trace(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    verdicts = [tenant_verdict(scope, v) for v in body["verdicts"]
                if scope.interface(v["router"], v["interface"])]
    steered = [st for st in body.get("steered", []) if scope.router(st["router"])]
    return {"version": body["version"], "source": body["source"],
            "trust": "suspicious" if steered else "trusted", "steered": steered,
            "stopped_on": [f"{v['router']}:{v['interface']}" for v in verdicts if v["verdict"] != "pass"],
            "verdicts": verdicts}


def _rpki(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    """Counts only: cache names, hosts and file paths are the operator's."""
    return {"caches": [], "files": [], "counts": body["counts"], "state": body["state"]}


def _flowspec_peers(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    peers = {}
    for peer in body["peers"]:
        held = _held(scope, ports.flowspec.held(peer))
        if held is not None:
            peers[peer] = len(held)
    return {"peers": peers}


def _check_peer(scope: TenantScope, ask: Ask, ports: ApiPorts) -> None:
    """Known or not, a peer that is not the tenant's gets the same 403 before the handler (whose 404 for
    an unknown peer would otherwise tell the two apart)."""
    peer = str(ask.path_params.get("peer", ""))
    if peer not in ports.flowspec.peers() or _held(scope, ports.flowspec.held(peer)) is None:
        raise _out(scope, f"peer {peer}")


def _flowspec_peer(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    peer = str(body["peer"])
    held = _held(scope, ports.flowspec.held(peer))
    if held is None:
        raise _out(scope, f"peer {peer}")
    keys = {key for key, _ in held}
    return {"peer": peer, "rules": [r for r in body["rules"] if r["key"] in keys]}


_PREFIX_IN_TEXT = re.compile(r"[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*/\d{1,3}")


def text_in_scope(scope: TenantScope, text: str) -> bool:
    """Every prefix written in `text` (a FlowSpec NLRI such as "source 198.18.1.0/24") may be shown."""
    return all(scope.source(p) or p in _ALWAYS_ALLOWED for p in _PREFIX_IN_TEXT.findall(text))


def _counters(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    """Counters of in-scope interfaces and sources; policy hits summed again over those counters only
    (the handler's sums include other interfaces)."""
    rows = [{**c, "source": _str(c.get("source")).split(":", 1)[0],
             "rule": c.get("rule", "") if text_in_scope(scope, _str(c.get("rule"))) else ""}
            for c in body["counters"]
            if scope.interface(c["router"], c["interface"]) and scope.source(c["source_prefix"])]
    if "policy_hits" not in body:
        return {"counters": rows}
    hits: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for c in rows:
        hit = hits.setdefault((c["router"], c["rule"], c["source_prefix"], c["action"]), {
            "time": 0.0, "source": c["source"], "severity": "info", "category": c.get("category", ""),
            "router": c["router"], "prefix": c["source_prefix"], "rule": c["rule"], "action": c["action"],
            "spoofed": c["spoofed"], "interfaces": [], "total_packets": 0, "total_bytes": 0})
        hit["time"] = max(hit["time"], c.get("time", 0.0))
        if c.get("severity") == "warning":
            hit["severity"] = "warning"
        hit["interfaces"].append(c["interface"])
        hit["total_packets"] += c["total_packets"]
        hit["total_bytes"] += c["total_bytes"]
    return {"counters": rows, "policy_hits": list(hits.values())}


def _traces(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    """Traces of in-scope interfaces with the tenant's spoofed sources only, totals summed again over
    them; an internal upstream router outside the scope is not named (its kind stays)."""
    traces = []
    for t in body["traces"]:
        sources = [s for s in t["sources"] if scope.source(s["prefix"])]
        if not (sources and scope.interface(t["router"], t["interface"])):
            continue
        upstream = [u if u["kind"] != "internal" or scope.router(u["router"]) else
                    {**u, "router": "", "address": ""} for u in t["upstream"]]
        traces.append({**t, "upstream": upstream, "sources": sources, "source_count": len(sources),
                       "packets": sum(s["packets"] for s in sources),
                       "bytes": sum(s["bytes"] for s in sources),
                       "first_seen": min(s["first_seen"] for s in sources),
                       "last_seen": max(s["last_seen"] for s in sources)})
    traces.sort(key=lambda t: -int(t["packets"]))
    return {**body, "traces": traces}


def _events(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    """The tenant's events among those the query selected (`limit` counts before this filter)."""
    kept = (tenant_record(scope, e) for e in body["events"])
    return {**body, "events": [e for e in kept if e is not None]}


def _alarms(scope: TenantScope, ask: Ask, body: Json, ports: ApiPorts) -> Json:
    kept = (tenant_record(scope, a) for a in body["alarms"])
    return {"alarms": [a for a in kept if a is not None]}


PUBLIC = Policy("public", why="the API's description: no state")
REFUSE = Policy("refuse", why="not served to tenants")

#: (method, path template) -> the tenant policy of that route; a route missing here is refused to tenants
_STEERING = ("steering through inspection functions is the operator's: inspectors and suspects span every "
             "router")

_COLLABORATION = ("collaboration agreements with other ASes are the operator's: they span every router "
                  "facing a peer")

POLICIES: dict[Key, Policy] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/metrics"): Policy("refuse", why="Prometheus metrics label every router and prefix; they are "
                                              "the operator's"),
    ("GET", "/health"): Policy("filter", _health),
    ("GET", "/api/v1/topology"): Policy("filter", _topology),
    ("GET", "/api/v1/reports"): Policy("filter", _reports),
    ("POST", "/api/v1/reports"): Policy("filter", _written, _check_post_report),
    ("DELETE", "/api/v1/reports"): Policy("filter", _written, _check_delete_report),
    ("GET", "/api/v1/rules"): Policy("filter", _rules),
    ("GET", "/api/v1/rules/{router}/{interface}"): Policy("filter", _interface_rule, _check_interface_rule),
    ("GET", "/api/v1/explain"): Policy("filter", _explained, _check_explain),
    ("GET", "/api/v1/trace"): Policy("filter", _trace, _check_source),
    ("GET", "/api/v1/rpki"): Policy("filter", _rpki),
    ("GET", "/api/v1/flowspec"): Policy("filter", _flowspec_peers),
    ("GET", "/api/v1/flowspec/{peer}"): Policy("filter", _flowspec_peer, _check_peer),
    ("GET", "/api/v1/counters"): Policy("filter", _counters),
    ("GET", "/api/v1/events"): Policy("filter", _events),
    ("GET", "/api/v1/alarms"): Policy("filter", _alarms),
    ("GET", "/api/v1/events/stream"): Policy("stream", event=tenant_record),
    ("GET", "/api/v1/traces"): Policy("filter", _traces),
    ("POST", "/api/v1/alarms/ack"): Policy("refuse", why="alarm actions are the operator's"),
    ("POST", "/api/v1/alarms/clear"): Policy("refuse", why="alarm actions are the operator's"),
    ("GET", "/api/v1/inspectors"): Policy("refuse", why=_STEERING),
    ("POST", "/api/v1/inspectors"): Policy("refuse", why=_STEERING),
    ("POST", "/api/v1/inspectors/{name}/load"): Policy("refuse", why=_STEERING),
    ("DELETE", "/api/v1/inspectors/{name}"): Policy("refuse", why=_STEERING),
    ("GET", "/api/v1/suspects"): Policy("refuse", why=_STEERING),
    ("POST", "/api/v1/suspects"): Policy("refuse", why=_STEERING),
    ("DELETE", "/api/v1/suspects"): Policy("refuse", why=_STEERING),
    ("GET", "/api/v1/collaboration"): Policy("refuse", why=_COLLABORATION),
    ("POST", "/api/v1/collaboration/{peer}/end"): Policy("refuse", why=_COLLABORATION),
    ("POST", "/api/v1/collaboration/{peer}/allow"): Policy("refuse", why=_COLLABORATION),
    ("GET", "/dashboard"): Policy("public", why="a redirect to the dashboard's files"),
    ("*", "/dashboard"): Policy("public", why="the dashboard's static files: no state (its data comes from "
                                              "the API, filtered here)"),
}


# --- the gate ------------------------------------------------------------------------------------------


class _NotJson(SavdError):
    """A filtered route answered something other than JSON: it cannot be filtered, so it is refused."""


class TenantGate:
    """ASGI middleware: requests with a tenant token go through their route's policy; others pass."""

    def __init__(self, app: ASGIApp, auth: Auth, ports: ApiPorts, routes: Sequence[BaseRoute],
                 policies: Mapping[Key, Policy] | None = None) -> None:
        self.app = app
        self.auth = auth
        self.ports = ports
        self.routes = routes  # the app's live list: routes added after the gate are gated too
        self.policies = POLICIES if policies is None else policies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.auth.tenants:
            await self.app(scope, receive, send)
            return
        viewer = self.auth.viewer(Headers(scope=scope).get("authorization", ""))
        if not isinstance(viewer, TenantScope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # no websocket route has a tenant policy
            await send({"type": "websocket.close", "code": 1008})
            return
        scope[GATE_MARK] = viewer
        await self._serve(viewer, scope, receive, send)

    def _match(self, scope: Scope) -> tuple[Key, Mapping[str, Any]] | None:
        method = str(scope.get("method", "GET")).upper()
        method = "GET" if method == "HEAD" else method
        for prefix, route in flat_routes(self.routes):
            if prefix and not str(scope.get("path", "")).startswith(prefix):
                continue
            inner = {**scope, "path": str(scope["path"])[len(prefix):]} if prefix else scope
            match, child = route.matches(inner)
            if match is Match.FULL:
                path = prefix + template(str(getattr(route, "path", "")))
                key = ("*", path) if isinstance(route, Mount) else (method, path)
                return key, child.get("path_params", {})
        return None

    async def _serve(self, tenant: TenantScope, scope: Scope, receive: Receive, send: Send) -> None:
        matched = self._match(scope)
        if matched is None:  # 404 or 405 from the router: no state in either
            await self.app(scope, receive, send)
            return
        key, params = matched
        policy = self.policies.get(key)
        if policy is None or policy.kind == "refuse":
            why = policy.why if policy else "no tenant policy is declared for this route"
            refusal = error_response(403, f"tenant {tenant.name!r}: {key[0]} {key[1]}: {why}")
            await refusal(scope, receive, send)
            return
        if policy.kind == "public":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET")).upper()
        body: Json = None
        if method not in SAFE_METHODS:
            raw = await _read_all(receive)
            receive = _replay(raw, receive)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None  # the handler answers 422
        ask = Ask(method, params, QueryParams(scope.get("query_string", b"")), body)
        try:
            if policy.check is not None:
                policy.check(tenant, ask, self.ports)
        except Refused as exc:
            await error_response(403, str(exc))(scope, receive, send)
            return
        if policy.kind == "stream":
            await self.app(scope, receive, _SseFilter(tenant, policy, send).send)
            return
        await self._filtered(tenant, policy, ask, scope, receive, send)

    async def _filtered(self, tenant: TenantScope, policy: Policy, ask: Ask, scope: Scope, receive: Receive,
                        send: Send) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                media = Headers(raw=message.get("headers", [])).get("content-type", "")
                if not media.startswith("application/json"):
                    raise _NotJson(media)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, receive, capture)
        except _NotJson as exc:
            await error_response(403, f"tenant {tenant.name!r}: this route answered {exc} and only JSON "
                                      "can be filtered to a scope")(scope, receive, send)
            return
        status = int(start["status"])
        content = json.loads(b"".join(chunks) or b"null")
        try:
            if 200 <= status < 300 and policy.answer is not None:
                content = policy.answer(tenant, ask, content, self.ports)
            elif status == 409 and isinstance(content, dict):
                # names the other sources of the report (files, speakers): the operator's to know
                content = {"message": "the report comes from another source, not the API; ask the operator"}
        except Refused as exc:
            await error_response(403, str(exc))(scope, receive, send)
            return
        payload = json.dumps(content, separators=(",", ":")).encode()
        headers = MutableHeaders(raw=list(start.get("headers", [])))
        headers["content-length"] = str(len(payload))
        await send({"type": "http.response.start", "status": status, "headers": headers.raw})
        await send({"type": "http.response.body", "body": payload, "more_body": False})


async def _read_all(receive: Receive) -> bytes:
    """A write's body (guard.RequestGuard has bounded it already)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class _SseFilter:
    """Filters a text/event-stream: each event's JSON `data` goes through the policy's event filter;
    an event it drops, or whose data is not a JSON object, is not sent. Comments and retry lines pass."""

    _SEP = re.compile(rb"\r?\n\r?\n")
    #: stream messages that say nothing about routers or prefixes (stream.py): passed as they are
    PASSED = frozenset({"heartbeat", "dropped"})

    def __init__(self, tenant: TenantScope, policy: Policy, send: Send) -> None:
        self.tenant = tenant
        self.policy = policy
        self.downstream = send
        self.pending = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(raw=list(message.get("headers", [])))
            if "content-length" in headers:
                del headers["content-length"]  # events may be dropped
            await self.downstream({**message, "headers": headers.raw})
            return
        if message["type"] != "http.response.body":
            await self.downstream(message)
            return
        self.pending += message.get("body", b"")
        out: list[bytes] = []
        while (found := self._SEP.search(self.pending)) is not None:
            block, self.pending = self.pending[:found.start()], self.pending[found.end():]
            kept = self._block(block)
            if kept is not None:
                out.append(kept + b"\n\n")
        more = bool(message.get("more_body", False))
        if out or not more:
            await self.downstream({"type": "http.response.body", "body": b"".join(out), "more_body": more})

    def _block(self, block: bytes) -> bytes | None:
        lines = block.decode("utf-8", "replace").splitlines()
        data = [ln[5:].removeprefix(" ") for ln in lines if ln.startswith("data:")]
        names = {ln[6:].strip() for ln in lines if ln.startswith("event:")}
        if not data or names & self.PASSED:
            return block  # a comment, retry, heartbeat or drop notice: sequence numbers and times only
        try:
            record = json.loads("\n".join(data))
        except ValueError:
            return None
        event = self.policy.event
        shown = event(self.tenant, record) if event is not None and isinstance(record, dict) else None
        if shown is None:
            return None
        head = [ln for ln in lines if not ln.startswith("data:") and not ln.startswith(":")]
        return "\n".join([*head, "data: " + json.dumps(shown, separators=(",", ":"))]).encode()
