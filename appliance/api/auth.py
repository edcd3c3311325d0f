"""Bearer-token checks: always for writes, for reads when `read_token_required`.

With no token configured, writes are refused with 403 (the API is read-only) rather than open: an
appliance that programs routers must never take unauthenticated changes. Tokens are compared in
constant time.

Writes are checked twice on purpose: by guard.RequestGuard before the body is read (so an
unauthenticated client cannot make savd buffer or parse anything), and by the `write` dependency on
each route (so a route never depends on the middleware being installed).

A token names a viewer (scope.py): the [api] token the operator, each [[api.tenant]] token its tenant.
A tenant's requests are served through tenants.TenantGate, which marks the request; the `read` and
`write` dependencies refuse a tenant token on a request the gate did not mark, so a tenant can never get
the operator's view because the gate was left out.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from appliance.api.scope import OPERATOR, TenantScope, Viewer
from appliance.config import ApiConfig

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}

#: the ASGI scope key tenants.TenantGate sets to the tenant it serves
GATE_MARK = "savd.tenant"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request may not proceed: the HTTP status, the message and headers to send."""

    status_code: int
    message: str
    headers: dict[str, str]

    def exception(self) -> HTTPException:
        return HTTPException(self.status_code, self.message, headers=self.headers or None)


class Auth:
    def __init__(self, settings: ApiConfig) -> None:
        self.token = settings.token
        self.read_required = settings.read_token_required
        self.tenants = tuple((t.token.encode(), TenantScope.of(t)) for t in settings.tenants)

    @staticmethod
    def presented(authorization: str) -> str:
        """The token of an `Authorization: Bearer <token>` header value; "" for any other value."""
        scheme, _, value = authorization.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""

    def viewer(self, authorization: str) -> Viewer | None:
        """Whose token this header value carries; None for none or an unknown one. Every configured
        token is compared (in constant time), so the time taken does not tell which one came close."""
        given = self.presented(authorization).encode()
        if not given:
            return None
        found: Viewer | None = OPERATOR if self.token and hmac.compare_digest(given, self.token.encode()) \
            else None
        for token, tenant in self.tenants:
            if hmac.compare_digest(given, token) and found is None:
                found = tenant
        return found

    def token_refusal(self, authorization: str) -> Refusal | None:
        if self.viewer(authorization) is None:
            return Refusal(status.HTTP_401_UNAUTHORIZED,
                           "missing or wrong bearer token (Authorization: Bearer <token>)", BEARER_CHALLENGE)
        return None

    def write_refusal(self, authorization: str) -> Refusal | None:
        """None when a write with this Authorization header value may proceed."""
        if not self.token and not self.tenants:
            return Refusal(status.HTTP_403_FORBIDDEN, "writes are disabled: no API token is configured", {})
        return self.token_refusal(authorization)

    def _ungated(self, request: Request) -> None:
        """A tenant token on a request tenants.TenantGate did not serve: refused, never the operator view."""
        if self.tenants:
            viewer = self.viewer(request.headers.get("authorization", ""))
            if isinstance(viewer, TenantScope) and request.scope.get(GATE_MARK) is not viewer:
                raise HTTPException(status.HTTP_403_FORBIDDEN,
                                    f"tenant {viewer.name!r}: this route is not served to tenants")

    def read(self, request: Request) -> None:
        if self.read_required:
            refusal = self.token_refusal(request.headers.get("authorization", ""))
            if refusal is not None:
                raise refusal.exception()
        self._ungated(request)

    def write(self, request: Request) -> None:
        refusal = self.write_refusal(request.headers.get("authorization", ""))
        if refusal is not None:
            raise refusal.exception()
        self._ungated(request)
