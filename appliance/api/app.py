"""The FastAPI application: routes over the ports, JSON throughout, OpenAPI at /openapi.json with a typed
model per answer (schemas.py; FastAPI checks each answer against it).

Handlers are `async def`, so they run on the daemon's event loop, the same task that owns the state:
API writes and protocol events never race (GoBGP's one-writer rule, without a queue to maintain).
Malformed input is a 4xx with a `message` and leaves state untouched: validation happens before any
change is applied, and a change is one `apply` call. Every error, of any status, has the one shape of
errors.py ({"message": ..., optional fields}); guard.RequestGuard checks a write's token and the body
size before any body byte is read. A journal that cannot be written makes a write a 507 (disk full) or
500 that changed nothing, and /health "degraded" while the journal alarm is raised.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Response, status
from fastapi.security import HTTPBearer
from pydantic import ValidationError

from appliance.api.alarm_actions import AlarmAcks, alarm_routes
from appliance.api.auth import Auth
from appliance.api.collab import allowance_json, collab_routes, now_of
from appliance.api.errors import install_error_handlers
from appliance.api.explain import explain, parse_source, trust
from appliance.api.guard import RequestGuard
from appliance.api.httpmetrics import HttpMetrics, HttpStats
from appliance.api.monitoring import event_filter, monitoring_routes
from appliance.api.ports import ApiPorts
from appliance.api.schemas import (
    Alarms,
    Counters,
    ErrorBody,
    Events,
    Explained,
    FlowRuleOut,
    FlowSpecPeers,
    Health,
    HeldRules,
    InterfaceRule,
    ReportIn,
    ReportList,
    ReportsDeleted,
    ReportWritten,
    RpkiStatus,
    RuleList,
    Topology,
    Trace,
)
from appliance.api.steering import steering_routes
from appliance.api.tenants import TenantGate
from appliance.config import ApiConfig
from appliance.dashboard import mount_dashboard
from appliance.flowspec.compiler import TableCache
from appliance.model import PrefixReport, SavRuleSet, canonical_prefix
from appliance.monitor.bus import RecordFilter
from appliance.monitor.events import EventType, Operational
from appliance.monitor.metrics import CONTENT_TYPE
from appliance.names import check_interface_name, check_router_name
from appliance.state import Announce, StateSnapshot, Withdraw
from appliance.state.facts import encode_fact

API_SOURCE = "api"


ERROR_MEANINGS = {
    401: "no or a wrong bearer token (writes; reads too with read_token_required)",
    403: "writes are disabled: no API token is configured",
    404: "no such report, rule, peer, raised alarm, inspector or suspect",
    409: "the report (or inspector) comes from another source (remove it there)",
    413: "the body is larger than the API accepts",
    422: "invalid input: `detail` lists each field and why",
    500: "the state journal could not be written; nothing changed",
    507: "the disk is full; nothing changed",
}

#: alarm types that make /health "degraded": savd runs but cannot keep what it is told
DEGRADING_ALARMS = (str(EventType.JOURNAL_FAILED),)


def _stale(ports: ApiPorts) -> set[tuple[str, str]]:
    """(router, interface) of the rules resting on inputs past their freshness bound (stale.rule alarms)."""
    return {(a.fields.get("router", ""), a.fields.get("interface", ""))
            for a in ports.monitor.alarms.active(str(EventType.RULE_STALE))}


def _rules_json(ruleset: SavRuleSet, snap: StateSnapshot | None = None,
                stale: set[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Rules as JSON, each flagged `stale` when a stale.rule alarm names it; with a snapshot, each path in
    a provenance also names the sources that reported it ("path:eth2:65010>65011 via bmp:b1/198.18.40.2"),
    so an operator sees which router feed it came from."""
    rules: list[dict[str, Any]] = ruleset.to_dict()["rules"]
    for r in rules:
        r["stale"] = (r["router"], r["interface"]) in (stale or ())
    if snap is None or not snap.paths:
        return rules
    wanted = {(r["router"], r["interface"]) for r in rules
              if any(e.startswith("path:") for prov in r["provenance"].values() for e in prov)}
    if not wanted:
        return rules
    by_key: dict[tuple[str, str, str, str], set[str]] = {}
    for path in snap.paths:
        if (path.router, path.interface) in wanted:
            entry = f"path:{path.interface}:{'>'.join(str(a) for a in path.as_path)}"
            by_key.setdefault((path.router, path.interface, path.prefix, entry), set()).update(
                snap.sources_of(path))
    for r in rules:
        if (r["router"], r["interface"]) not in wanted:
            continue
        for prefix, prov in r["provenance"].items():
            r["provenance"][prefix] = [
                f"{e} via {','.join(sorted(by_key.get((r['router'], r['interface'], prefix, e), ())))}"
                if e.startswith("path:") and by_key.get((r["router"], r["interface"], prefix, e)) else e
                for e in prov
            ]
    return rules


def create_app(ports: ApiPorts, settings: ApiConfig) -> FastAPI:
    app = FastAPI(
        title="savd",
        version="1",
        description="SAV route-server appliance: topology, source-prefix reports, SAV rules with explain, "
        "RPKI, FlowSpec per peer, enforcer counters, events and alarms. Writes need a bearer token.",
    )
    auth = Auth(settings)
    # Declares the bearer scheme in OpenAPI, so /docs has "Authorize" and sends the token; it checks
    # nothing (auto_error=False): Auth and guard.RequestGuard decide, with the one error body.
    bearer = Depends(HTTPBearer(auto_error=False, scheme_name="bearer",
                                description="the [api] token of savd.toml (or $SAVD_API_TOKEN)"))
    read = [Depends(auth.read), *([bearer] if settings.read_token_required else [])]
    write = [Depends(auth.write), bearer]
    # the error statuses each route can answer, all with the one error body (appliance/api/errors.py)
    def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
        return {code: {"model": ErrorBody, "description": ERROR_MEANINGS[code]} for code in codes}

    read_errors = (401,) if settings.read_token_required else ()
    write_errors = (401, 403, 413, 422, 500, 507)
    install_error_handlers(app)
    explain_cache = TableCache(max_lists=256)  # compiled lists, so a trace re-aggregates only new ones
    acks = AlarmAcks()  # operators' acknowledgements (alarm_actions.py)
    # inside the guard: a tenant token's requests go through their route's tenant policy (tenants.py)
    app.add_middleware(TenantGate, auth=auth, ports=ports, routes=app.router.routes)
    app.add_middleware(RequestGuard, auth=auth, body_limit_bytes=settings.body_limit_bytes)
    http_stats = HttpStats()
    ports.metrics.add_collector("http", http_stats)
    app.add_middleware(HttpMetrics, stats=http_stats, routes=app.router.routes)  # outermost: counts refusals

    @app.get("/health", tags=["meta"], dependencies=read, response_model=Health,
             response_model_exclude_unset=True, responses=errors(*read_errors))
    async def health() -> dict[str, Any]:
        """"ok", or "degraded" with the reasons while an alarm says savd cannot keep its inputs."""
        current = ports.rules.current()
        degraded = [a.message for t in DEGRADING_ALARMS for a in ports.monitor.alarms.active(t)]
        body: dict[str, Any] = {
            "status": "degraded" if degraded else "ok",
            "state_version": ports.facts.snapshot().version,
            "rules_version": current[0] if current else None,
            "alarms": len(ports.monitor.alarms.active()),
        }
        if degraded:
            body["degraded"] = degraded
        return body

    @app.get("/metrics", tags=["meta"], dependencies=read, response_class=Response,
             responses={200: {"description": "Prometheus text exposition format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                        **errors(*read_errors)})
    async def metrics() -> Response:
        return Response(ports.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/api/v1/topology", tags=["topology"], dependencies=read, response_model=Topology,
             responses=errors(*read_errors))
    async def topology() -> dict[str, Any]:
        snap = ports.facts.snapshot()
        inputs = ports.inputs(snap) if ports.inputs is not None else None
        routers = snap.routers  # the routers the sources report (learned), with their resolved roles
        if inputs is not None:
            learned = {r.name for r in snap.routers}
            routers = tuple(r for r in inputs.routers if r.name in learned)
        neighbors = inputs.neighbors if inputs is not None else snap.neighbors
        return {
            "version": snap.version,
            "routers": [encode_fact(r) for r in routers],
            "interfaces": [encode_fact(i) for i in snap.interfaces],
            "links": [encode_fact(link) for link in snap.links],
            "igp_prefixes": [encode_fact(p) for p in snap.igp_prefixes],
            "neighbors": [encode_fact(n) for n in neighbors],
            "paths": len(snap.paths),
        }

    @app.get("/api/v1/reports", tags=["reports"], dependencies=read, response_model=ReportList,
             responses=errors(*read_errors))
    async def list_reports(router: str = "", interface: str = "") -> dict[str, Any]:
        snap = ports.facts.snapshot()
        reports = [
            {**encode_fact(r), "sources": sorted(snap.sources_of(r))}
            for r in snap.reports
            if (not router or r.router == router) and (not interface or r.interface == interface)
        ]
        return {"version": snap.version, "reports": reports}

    @app.post("/api/v1/reports", tags=["reports"], dependencies=write, status_code=status.HTTP_201_CREATED,
              response_model=ReportWritten,
              responses={200: {"model": ReportWritten, "description": "replaced or already held"},
                         **errors(*write_errors)})
    async def create_report(body: ReportIn, response: Response) -> dict[str, Any]:
        """Add the report, or replace the API's report for the same (router, interface, prefix): 201 when
        that key is new, 200 when it replaced one (`replaced` lists it) or was held already."""
        report = body.to_report()
        snap = ports.facts.snapshot()
        key = (report.router, report.interface, report.prefix)
        held = [r for r in snap.reports
                if (r.router, r.interface, r.prefix) == key and API_SOURCE in snap.sources_of(r)]
        replaced = tuple(r for r in held if r != report)
        # announce before withdrawing: a failure in between leaves both reports (wider, so fail open)
        applied = ports.facts.apply(Announce(API_SOURCE, (report,)))
        if replaced:
            applied = ports.facts.apply(Withdraw(API_SOURCE, replaced))
        if held:
            response.status_code = status.HTTP_200_OK
        if replaced or not held:
            _report_event(ports, "replaced" if replaced else "added", report)
        return {"report": encode_fact(report), "created": not held,
                "replaced": [encode_fact(r) for r in replaced], "version": applied.version}

    @app.delete("/api/v1/reports", tags=["reports"], dependencies=write, response_model=ReportsDeleted,
                responses=errors(*write_errors, 404, 409))
    async def delete_report(
        router: Annotated[str, Query(min_length=1)],
        interface: Annotated[str, Query(min_length=1)],
        prefix: Annotated[str, Query(min_length=1)],
    ) -> dict[str, Any]:
        canonical = _canonical_or_422(prefix)
        _name_or_422("router", router, check_router_name)
        _name_or_422("interface", interface, check_interface_name)
        snap = ports.facts.snapshot()
        wanted = (router, interface, canonical)
        found = [r for r in snap.reports if (r.router, r.interface, r.prefix) == wanted]
        if not found:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no report of {prefix} on {router} {interface}")
        ours = [r for r in found if API_SOURCE in snap.sources_of(r)]
        if not ours:
            others = sorted({s for r in found for s in snap.sources_of(r)})
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"report of {prefix} on {router} {interface} comes from {', '.join(others)}, "
                                "not from the API; remove it at its source")
        applied = ports.facts.apply(Withdraw(API_SOURCE, tuple(ours)))
        for r in ours:
            _report_event(ports, "deleted", r)
        return {"deleted": [encode_fact(r) for r in ours], "version": applied.version}

    @app.get("/api/v1/rules", tags=["rules"], dependencies=read, response_model=RuleList,
             responses=errors(*read_errors))
    async def rules(router: str = "") -> dict[str, Any]:
        version, ruleset = _current(ports)
        chosen = SavRuleSet(ruleset.for_router(router)) if router else ruleset
        steering = [s.to_dict() for s in ruleset.steering if not router or s.router == router]
        snap, now = ports.facts.snapshot(), now_of(ports)
        collaboration = [allowance_json(a, now) for a in snap.collab_allowances
                         if a.expires_at > now and (not router or a.router == router)]
        return {"version": version, "rules": _rules_json(chosen, snap, _stale(ports)),
                "steering": steering, "collaboration": collaboration}

    @app.get("/api/v1/rules/{router}/{interface:path}", tags=["rules"], dependencies=read,
             response_model=InterfaceRule, responses=errors(*read_errors, 404))
    async def interface_rules(router: str, interface: str) -> dict[str, Any]:
        version, ruleset = _current(ports)
        rule = ruleset.get(router, interface)
        if rule is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no SAV rule on {router} {interface}")
        return {"version": version,
                "rule": _rules_json(SavRuleSet((rule,)), ports.facts.snapshot(), _stale(ports))[0]}

    @app.get("/api/v1/explain", tags=["rules"], dependencies=read, response_model=Explained,
             responses=errors(*read_errors, 422))
    async def explain_source(
        router: Annotated[str, Query(min_length=1)],
        interface: Annotated[str, Query(min_length=1)],
        source: Annotated[str, Query(min_length=1, description="source address or prefix")],
    ) -> dict[str, Any]:
        current = ports.rules.current()
        rule = current[1].get(router, interface) if current else None
        try:
            result = explain(router, interface, rule, source, explain_cache)
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        return {"version": current[0] if current else None, **result.to_dict()}

    @app.get("/api/v1/trace", tags=["rules"], dependencies=read, response_model=Trace,
             responses=errors(*read_errors, 422))
    async def trace_source(
        source: Annotated[str, Query(min_length=1, description="source address or prefix")],
        router: str = "",
    ) -> dict[str, Any]:
        """Where would packets from `source` be stopped? The verdict on every interface with a rule."""
        version, ruleset = _current(ports)
        rules = ruleset.for_router(router) if router else ruleset.rules
        try:
            src = parse_source(source)
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
        results = [explain(r.router, r.interface, r, src, explain_cache) for r in rules]
        level, steered = trust(src, ruleset.steering, router)
        return {
            "version": version,
            "source": src,
            "trust": level,
            "steered": [s.to_dict() for s in steered],
            "stopped_on": [f"{e.router}:{e.interface}" for e in results if e.verdict != "pass"],
            "verdicts": [e.to_dict() for e in results],
        }

    @app.get("/api/v1/rpki", tags=["rpki"], dependencies=read, response_model=RpkiStatus,
             responses=errors(*read_errors))
    async def rpki() -> dict[str, Any]:
        snap = ports.facts.snapshot()
        return {**ports.rpki.rpki_status(), "state": {"vrps": len(snap.vrps), "aspas": len(snap.aspas)}}

    @app.get("/api/v1/flowspec", tags=["flowspec"], dependencies=read, response_model=FlowSpecPeers,
             responses=errors(*read_errors))
    async def flowspec_peers() -> dict[str, Any]:
        return {"peers": {p: len(ports.flowspec.held(p)) for p in ports.flowspec.peers()}}

    @app.get("/api/v1/flowspec/{peer}", tags=["flowspec"], dependencies=read, response_model=HeldRules,
             responses=errors(*read_errors, 404))
    async def flowspec_peer(peer: str) -> dict[str, Any]:
        if peer not in ports.flowspec.peers():
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no FlowSpec rules recorded for peer {peer}")
        held = sorted(ports.flowspec.held(peer).items())
        return {"peer": peer, "rules": [{"key": k, "rule": _rule_or_text(v)} for k, v in held]}

    @app.get("/api/v1/counters", tags=["enforcer"], dependencies=read, response_model=Counters,
             responses=errors(*read_errors))
    async def counters(router: str = "", interface: str = "") -> dict[str, Any]:
        return {"counters": ports.counters.rows(router, interface),
                "policy_hits": [h for h in ports.counters.policy_hits(router)
                                if not interface or interface in h["interfaces"]]}

    @app.get("/api/v1/events", tags=["events"], dependencies=read, response_model=Events,
             responses=errors(*read_errors, 422))
    async def events(
        since: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        where: RecordFilter = Depends(event_filter),  # noqa: B008 (FastAPI's dependency idiom)
    ) -> dict[str, Any]:
        """Poll: events after `since`; GET /api/v1/events/stream pushes the same (monitoring.py)."""
        bus = ports.monitor.bus
        records = bus.recent(since, limit, where=where)
        return {"last_seq": bus.last_seq, "dropped": bus.dropped, "events": [r.to_dict() for r in records]}

    @app.get("/api/v1/alarms", tags=["events"], dependencies=read, response_model=Alarms,
             responses=errors(*read_errors))
    async def alarms(type: str = "") -> dict[str, Any]:
        return {"alarms": [acks.served(a) for a in ports.monitor.alarms.active(type)]}

    app.include_router(alarm_routes(ports, acks, write, errors(*write_errors, 404)))
    app.include_router(steering_routes(ports, read, write, errors(*read_errors),
                                       lambda *extra: errors(*write_errors, *extra)))
    app.include_router(collab_routes(ports, read, errors(*read_errors), write,
                                     lambda *extra: errors(*write_errors, *extra)))
    mount_dashboard(app)  # the web dashboard's static files at /dashboard/ (appliance/dashboard)
    app.include_router(monitoring_routes(ports, read, errors, read_errors))  # event stream, traces
    _drop_fastapi_422(app)
    return app


def _drop_fastapi_422(app: FastAPI) -> None:
    """FastAPI documents a 422 of its own shape (HTTPValidationError) on every route with parameters, but
    savd answers 422 with ErrorBody (errors.py), and only on the routes whose `errors(...)` list it: the
    others take free-form strings that cannot fail validation. So the document drops FastAPI's."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        spec = default()  # built once, then cached by FastAPI; the cleaning below is idempotent
        for item in spec.get("paths", {}).values():
            for op in item.values():
                fastapi_422 = op.get("responses", {}).get("422", {})
                if "HTTPValidationError" in json.dumps(fastapi_422):
                    del op["responses"]["422"]
        for name in ("HTTPValidationError", "ValidationError"):
            spec.get("components", {}).get("schemas", {}).pop(name, None)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _rule_or_text(text: str) -> FlowRuleOut | str:
    """A pushed rule recorded as FlowRule JSON (state/pushed.py) is served as an object; any other record
    (text from before, or damaged) as its text, so one odd record does not make the peer's list a 500."""
    try:
        return FlowRuleOut.model_validate_json(text)
    except ValidationError:
        return text


def _current(ports: ApiPorts) -> tuple[int | None, SavRuleSet]:
    current = ports.rules.current()
    return (current[0], current[1]) if current else (None, SavRuleSet())


def _canonical_or_422(prefix: str) -> str:
    try:
        return canonical_prefix(prefix)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"prefix: {exc}") from None


def _name_or_422(field: str, value: str, check: Callable[[object], str]) -> None:
    try:
        check(value)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{field}: {exc}") from None


def _report_event(ports: ApiPorts, what: str, report: PrefixReport) -> None:
    where = f"{report.prefix} on {report.router} {report.interface}"
    ports.monitor.emit(Operational(
        EventType.REPORT_CHANGED, "api", f"report {what}: {where}",
        extra=(("router", report.router), ("interface", report.interface), ("prefix", report.prefix),
               ("change", what)),
    ))
