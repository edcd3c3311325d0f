"""Monitoring routes beside app.py's: the pushed event stream and the spoofing traces.

GET /api/v1/events/stream serves the bus as server-sent events (stream.py) with the filters of GET
/api/v1/events (`event_filter`, shared by both); GET /api/v1/traces serves monitor/traces.py's traces with
each interface's upstream resolved from the learned topology and the configured eBGP neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, params
from fastapi.responses import StreamingResponse

from appliance.api.ports import ApiPorts
from appliance.api.schemas import SpoofTraces
from appliance.api.stream import MEDIA_TYPE, StreamOptions, event_frames, frame
from appliance.model import Severity
from appliance.monitor.bus import RecordFilter
from appliance.monitor.metadata import Category
from appliance.monitor.traces import TraceBoard, Upstream, upstream


def event_filter(
    type: Annotated[list[str] | None, Query(description="only these event types (repeatable)")] = None,
    severity: Annotated[Severity, Query(description="lowest severity")] = Severity.DEBUG,
    alarms_only: bool = False,
    category: Annotated[list[Category] | None, Query(description="only these categories")] = None,
    router: Annotated[str, Query(description="only events about this router")] = "",
    interface: Annotated[str, Query(description="only events about this interface")] = "",
) -> RecordFilter:
    """The event filters of GET /api/v1/events and its stream (a FastAPI dependency)."""
    return RecordFilter(frozenset(type or ()), severity, alarms_only,
                        frozenset(str(c) for c in category or ()), router, interface)


def monitoring_routes(ports: ApiPorts, read: Sequence[params.Depends],
                      errors: Callable[..., dict[int | str, dict[str, Any]]], read_errors: tuple[int, ...],
                      stream: StreamOptions | None = None) -> APIRouter:
    router = APIRouter()
    stream = stream or StreamOptions()
    traces = ports.traces
    if traces is None:  # no board handed in: keep one here, fed from the bus from now on
        traces = TraceBoard()
        ports.monitor.bus.subscribe(traces.on_record)
    board: TraceBoard = traces

    @router.get("/api/v1/events/stream", tags=["events"], dependencies=list(read),
                response_class=StreamingResponse,
                responses={200: {"description": "server-sent events: one message per event (`id` = its seq, "
                                                "`data` = the event as in GET /api/v1/events), `event: "
                                                "heartbeat` and `event: dropped` messages",
                                 "content": {MEDIA_TYPE: {"schema": {"type": "string"}}}},
                           **errors(*read_errors, 422)})
    async def event_stream(
        where: Annotated[RecordFilter, Depends(event_filter)],
        since: Annotated[int, Query(ge=0, description="resume after this seq (Last-Event-ID wins)")] = 0,
        once: Annotated[bool, Query(description="send what the ring holds after `since`, then end")] = False,
        heartbeat_s: Annotated[float, Query(ge=0.05, le=300.0)] = stream.heartbeat_s,
        last_event_id: Annotated[str, Header(alias="Last-Event-ID")] = "",
    ) -> StreamingResponse:
        """Push: the events as they are published (the same filters as GET /api/v1/events)."""
        last = int(last_event_id) if last_event_id.strip().isdigit() else since
        if once:
            records = ports.monitor.bus.recent(since=last, limit=ports.monitor.bus.last_seq or 1, where=where)
            body = "".join(frame(r.to_dict(), id_=r.seq) for r in records)
            return StreamingResponse(iter([body]), media_type=MEDIA_TYPE)
        options = StreamOptions(heartbeat_s, stream.queue, stream.retry_ms)
        return StreamingResponse(event_frames(ports.monitor.bus, where, last, options), media_type=MEDIA_TYPE,
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.get("/api/v1/traces", tags=["enforcer"], dependencies=list(read), response_model=SpoofTraces,
                responses=errors(*read_errors, 422))
    async def spoof_traces(
        router_name: Annotated[str, Query(alias="router", description="only this router")] = "",
        interface: Annotated[str, Query(description="only this interface")] = "",
        since: Annotated[float, Query(ge=0, description="only traffic from this Unix time on")] = 0.0,
        top: Annotated[int, Query(ge=1, le=1000, description="source prefixes per interface")] = 10,
    ) -> dict[str, Any]:
        """Where spoofed traffic enters: router, interface, upstream neighbour and the top spoofed source
        prefixes with their dropped packets per time bucket (seeds/003 traceability)."""
        snap = ports.facts.snapshot()
        neighbors = ports.inputs(snap).neighbors if ports.inputs is not None else snap.neighbors
        reported = {(r.router, r.interface) for r in snap.reports}

        def resolve(r: str, i: str) -> list[Upstream]:
            return upstream(r, i, snap.interfaces, snap.links, neighbors, reported)

        found = board.traces(ports.monitor.clock.now(), router_name, interface, since, top, resolve)
        return {"bucket_s": board.bucket_s, "window_s": board.window_s, "traces": [
            {"router": t.router, "interface": t.interface, "upstream": [u.to_dict() for u in t.upstream],
             "packets": t.packets, "bytes": t.bytes, "first_seen": t.first_seen, "last_seen": t.last_seen,
             "source_count": t.source_count, "sources": [s.to_dict() for s in t.sources]}
            for t in found]}

    return router
