"""Bearer-token checks: always for writes, for reads when `read_token_required`.

With no token configured, writes are refused with 403 (the API is read-only) rather than open: an
appliance that programs routers must never take unauthenticated changes. Tokens are compared in
constant time.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status

from appliance.config import ApiConfig


class Auth:
    def __init__(self, settings: ApiConfig) -> None:
        self.token = settings.token
        self.read_required = settings.read_token_required

    def _presented(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""

    def _check(self, request: Request) -> None:
        given = self._presented(request)
        if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong bearer token (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def read(self, request: Request) -> None:
        if self.read_required:
            self._check(request)

    def write(self, request: Request) -> None:
        if not self.token:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "writes are disabled: no API token is configured")
        self._check(request)
