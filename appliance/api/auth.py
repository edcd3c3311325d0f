"""Bearer-token checks: always for writes, for reads when `read_token_required`.

With no token configured, writes are refused with 403 (the API is read-only) rather than open: an
appliance that programs routers must never take unauthenticated changes. Tokens are compared in
constant time.

Writes are checked twice on purpose: by guard.RequestGuard before the body is read (so an
unauthenticated client cannot make savd buffer or parse anything), and by the `write` dependency on
each route (so a route never depends on the middleware being installed).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from appliance.config import ApiConfig

BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


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

    @staticmethod
    def presented(authorization: str) -> str:
        """The token of an `Authorization: Bearer <token>` header value; "" for any other value."""
        scheme, _, value = authorization.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""

    def token_refusal(self, authorization: str) -> Refusal | None:
        given = self.presented(authorization)
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            return Refusal(status.HTTP_401_UNAUTHORIZED,
                           "missing or wrong bearer token (Authorization: Bearer <token>)", BEARER_CHALLENGE)
        return None

    def write_refusal(self, authorization: str) -> Refusal | None:
        """None when a write with this Authorization header value may proceed."""
        if not self.token:
            return Refusal(status.HTTP_403_FORBIDDEN, "writes are disabled: no API token is configured", {})
        return self.token_refusal(authorization)

    def read(self, request: Request) -> None:
        if self.read_required:
            refusal = self.token_refusal(request.headers.get("authorization", ""))
            if refusal is not None:
                raise refusal.exception()

    def write(self, request: Request) -> None:
        refusal = self.write_refusal(request.headers.get("authorization", ""))
        if refusal is not None:
            raise refusal.exception()
