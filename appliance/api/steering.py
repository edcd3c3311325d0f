"""The steering routes: inspection function instances and suspect sources (engine/steering.py).

Writes go through the state store like reports (facts of source "api": journalled, so they survive a
restart, and each change triggers a recompute that re-decides the steering). An inspector is keyed by
name: a new registration or a load report replaces the API's record (announced before the old one is
withdrawn, like a replaced report). Configured `[[steering.inspector]]` instances are listed with source
"config"; a load report for one creates the API record that overrides it; they are removed in savd.toml.
Removing an inspector re-selects on the next recompute (another inspector, else the fallback and its
alarm). A suspect is keyed by (prefix, router).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, params, status

from appliance.api.ports import ApiPorts
from appliance.api.schemas import (
    InspectorDeleted,
    InspectorIn,
    InspectorList,
    InspectorWritten,
    LoadIn,
    SuspectIn,
    SuspectList,
    SuspectsDeleted,
    SuspectWritten,
)
from appliance.model import Inspector, Suspect, canonical_prefix
from appliance.state import Announce, StateSnapshot, Withdraw
from appliance.state.facts import encode_fact

API_SOURCE = "api"
Responses = dict[int | str, dict[str, Any]]


def _inspector_json(i: Inspector, source: str) -> dict[str, Any]:
    return {**encode_fact(i), "ratio": i.ratio, "source": source}


def _ours(snap: StateSnapshot, facts: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(f for f in facts if API_SOURCE in snap.sources_of(f))


def steering_routes(ports: ApiPorts, read: Sequence[params.Depends], write: Sequence[params.Depends],
                    read_errors: Responses, write_errors: Callable[..., Responses]) -> APIRouter:
    """GET/POST /api/v1/inspectors, POST .../{name}/load, DELETE .../{name}; GET/POST/DELETE
    /api/v1/suspects. `write_errors(*extra)` gives the error bodies of a write route."""
    router = APIRouter(tags=["steering"])

    def replace_ours(snap: StateSnapshot, new: Any, same_key: Sequence[Any], response: Response
                     ) -> tuple[bool, int]:
        """Announce `new` as the API's, withdrawing the API's other facts of its key; (created, version).
        Replacing answers 200 instead of 201."""
        held = _ours(snap, same_key)
        applied = ports.facts.apply(Announce(API_SOURCE, (new,)))
        stale = tuple(f for f in held if f != new)
        if stale:
            applied = ports.facts.apply(Withdraw(API_SOURCE, stale))
        if held:
            response.status_code = status.HTTP_200_OK
        return not held, applied.version

    def effective(snap: StateSnapshot) -> dict[str, tuple[Inspector, str]]:
        configured = ports.inspectors(snap) if ports.inspectors is not None else ()
        out = {i.name: (i, "config") for i in configured}
        out.update((i.name, (i, "api")) for i in snap.inspectors)
        return out

    def put(new: Inspector, response: Response) -> dict[str, Any]:
        snap = ports.facts.snapshot()
        same_name = [i for i in snap.inspectors if i.name == new.name]
        created, version = replace_ours(snap, new, same_name, response)
        return {"inspector": _inspector_json(new, "api"), "created": created, "version": version}

    @router.get("/api/v1/inspectors", dependencies=list(read), response_model=InspectorList,
                responses=read_errors)
    async def list_inspectors() -> dict[str, Any]:
        snap = ports.facts.snapshot()
        found = effective(snap)
        return {"version": snap.version,
                "inspectors": [_inspector_json(*found[name]) for name in sorted(found)]}

    @router.post("/api/v1/inspectors", dependencies=list(write), status_code=status.HTTP_201_CREATED,
                 response_model=InspectorWritten,
                 responses={200: {"model": InspectorWritten, "description": "updated or already held"},
                            **write_errors()})
    async def register_inspector(body: InspectorIn, response: Response) -> dict[str, Any]:
        """Register an inspection instance, or update the API's record of that name: 201 when new."""
        return put(body.to_inspector(), response)

    @router.post("/api/v1/inspectors/{name}/load", dependencies=list(write), response_model=InspectorWritten,
                 responses=write_errors(404))
    async def report_load(name: str, body: LoadIn, response: Response) -> dict[str, Any]:
        """An inspector's load report; 404 when no inspector has that name (API or configuration)."""
        found = effective(ports.facts.snapshot()).get(name)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no inspector {name}")
        answer = put(dataclasses.replace(found[0], load=body.load), response)
        response.status_code = status.HTTP_200_OK
        return answer

    @router.delete("/api/v1/inspectors/{name}", dependencies=list(write), response_model=InspectorDeleted,
                   responses=write_errors(404, 409))
    async def delete_inspector(name: str) -> dict[str, Any]:
        """Remove the API's inspector; its suspects go to another one, else to the fallback (alarm)."""
        snap = ports.facts.snapshot()
        ours = _ours(snap, [i for i in snap.inspectors if i.name == name])
        if not ours:
            if name in effective(snap):
                raise HTTPException(status.HTTP_409_CONFLICT, f"inspector {name} is configured in "
                                    "[[steering.inspector]]; remove it there")
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no inspector {name}")
        applied = ports.facts.apply(Withdraw(API_SOURCE, ours))
        return {"deleted": _inspector_json(ours[0], "api"), "version": applied.version}

    @router.get("/api/v1/suspects", dependencies=list(read), response_model=SuspectList,
                responses=read_errors)
    async def list_suspects() -> dict[str, Any]:
        snap = ports.facts.snapshot()
        return {"version": snap.version, "suspects": [encode_fact(s) for s in snap.suspects]}

    @router.post("/api/v1/suspects", dependencies=list(write), status_code=status.HTTP_201_CREATED,
                 response_model=SuspectWritten,
                 responses={200: {"model": SuspectWritten, "description": "replaced or already held"},
                            **write_errors()})
    async def add_suspect(body: SuspectIn, response: Response) -> dict[str, Any]:
        """Flag a source prefix as suspicious (steered through an inspector); 201 when (prefix, router) is
        new, 200 when it replaced the API's suspect of that key (a new reason)."""
        new = body.to_suspect()
        snap = ports.facts.snapshot()
        same_key = [s for s in snap.suspects if (s.prefix, s.router) == (new.prefix, new.router)]
        created, version = replace_ours(snap, new, same_key, response)
        return {"suspect": encode_fact(new), "created": created, "version": version}

    @router.delete("/api/v1/suspects", dependencies=list(write), response_model=SuspectsDeleted,
                   responses=write_errors(404))
    async def delete_suspects(prefix: Annotated[str, Query(min_length=1)], router: str | None = None
                              ) -> dict[str, Any]:
        """Remove the API's suspects of `prefix` (of one `router` when given, "" = the all-routers one)."""
        try:
            canonical = canonical_prefix(prefix)
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"prefix: {exc}") from None
        snap = ports.facts.snapshot()
        found: tuple[Suspect, ...] = _ours(snap, [
            s for s in snap.suspects if s.prefix == canonical and (router is None or s.router == router)])
        if not found:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no suspect {prefix}")
        applied = ports.facts.apply(Withdraw(API_SOURCE, found))
        return {"deleted": [encode_fact(s) for s in found], "version": applied.version}

    return router
