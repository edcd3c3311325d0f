"""GET /api/v1/collaboration: the collaborating peers, their agreements as last reported, and the allowances
their SAV-specific information gave (state facts of the sources `collab:<peer>`, sources/collab.py).

The protocol writes the allowances (through sources/collab.py), not the API; the operator can only end an
agreement (POST /api/v1/collaboration/{peer}/end: revocation, the draft's END_AGREEMENT from our side; the
allowances go and the alarm collab.agreement-ended says so). Tenants are refused (tenants.py): an agreement
spans every router facing the peer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, params, status

from appliance.api.ports import ApiPorts
from appliance.api.schemas import CollabAllowed, CollabEnded, Collaboration
from appliance.collab.model import Agreement
from appliance.model import CollabAllowance
from appliance.state.facts import encode_fact

Responses = dict[int | str, dict[str, Any]]
T = TypeVar("T")


def now_of(ports: ApiPorts) -> float:
    return ports.now() if ports.now is not None else time.time()


def allowance_json(a: CollabAllowance, now: float) -> dict[str, Any]:
    return {**encode_fact(a), "live": a.expires_at > now}


def agreement_state(a: Agreement | None, now: float) -> str:
    if a is None:
        return "unknown"
    return "ended" if a.ended else "expired" if a.expires_at <= now else "in-force"


def collaboration_view(agreements: dict[str, Agreement], allowances: Sequence[CollabAllowance], version: int,
                       now: float) -> dict[str, Any]:
    """The body of GET /api/v1/collaboration."""
    peers = sorted({*agreements, *(a.peer for a in allowances)})
    return {
        "version": version,
        "now": now,
        "peers": [{"peer": p, "agreement": agreements[p].ca_id if p in agreements else "",
                   "state": agreement_state(agreements.get(p), now),
                   "allowances": sum(1 for a in allowances if a.peer == p and a.expires_at > now)}
                  for p in peers],
        "agreements": [agreement_json(p, a, now) for p, a in sorted(agreements.items())],
        "allowances": [allowance_json(a, now) for a in allowances],
    }


def agreement_json(peer: str, a: Agreement, now: float) -> dict[str, Any]:
    return {"peer": peer, "ca_id": a.ca_id, "initiator": a.initiator, "provider": a.provider, "mode": a.mode,
            "info": a.info, "expires_at": a.expires_at, "ended": a.ended, "state": agreement_state(a, now)}


def running(action: Callable[[str], Awaitable[T]] | None) -> Callable[[str], Awaitable[T]]:
    """A collaboration action of the daemon; 409 where none runs (no [collaboration] listen)."""
    if action is None:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            "collaboration is not running here ([collaboration] has no listen)")
    return action


def collab_routes(ports: ApiPorts, read: Sequence[params.Depends], read_errors: Responses,
                  write: Sequence[params.Depends] = (),
                  write_errors: Callable[..., Responses] = lambda *extra: {}) -> APIRouter:
    router = APIRouter(tags=["collaboration"])

    @router.post("/api/v1/collaboration/{peer}/end", dependencies=list(write), response_model=CollabEnded,
                 responses=write_errors(404, 409))
    async def end(peer: str) -> dict[str, Any]:
        """Revoke the collaboration with `peer`: its agreement ends now (the peer is told), its allowances are
        withdrawn, and no new agreement is made with it until POST .../allow."""
        ended = await running(ports.end_agreement)(peer)
        if ended is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                f"no agreement in force with {peer} (revoked anyway: .../allow undoes it)")
        return {"ended": agreement_json(peer, ended, now_of(ports))}

    @router.post("/api/v1/collaboration/{peer}/allow", dependencies=list(write), response_model=CollabAllowed,
                 responses=write_errors(409))
    async def allow(peer: str) -> dict[str, Any]:
        """Undo a revocation: agreements with `peer` can be made again (it proposes, or we do)."""
        return {"peer": peer, "was_revoked": await running(ports.allow_peer)(peer)}

    @router.get("/api/v1/collaboration", dependencies=list(read), response_model=Collaboration,
                responses=read_errors)
    async def collaboration() -> dict[str, Any]:
        """Peers, agreements as last reported, and every allowance held (`live` false once expired)."""
        snap = ports.facts.snapshot()
        agreements = dict(ports.agreements()) if ports.agreements is not None else {}
        return collaboration_view(agreements, snap.collab_allowances, snap.version, now_of(ports))

    return router
