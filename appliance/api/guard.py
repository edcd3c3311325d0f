"""RequestGuard: the ASGI middleware that stands before every route.

It exists because FastAPI reads and parses a request's JSON body before it runs the route's
dependencies: the bearer-token check of a write came after savd had buffered and parsed whatever an
unauthenticated client sent (four 95 MB POSTs took 1 GB of memory and stalled /health for 3.6 s). So,
before any body byte is read:
1. a write (any method but GET, HEAD, OPTIONS) without the right token is refused: 401, or 403 when no
   token is configured (auth.py);
2. a `Content-Length` above `[api] body_limit_bytes` is refused with 413;
3. a write's body is read here, chunk by chunk, and refused with 413 as soon as it passes the limit (a
   chunked body has no Content-Length), then handed to the route from memory.
Reads are never asked for a body (no GET route has one), so they are not buffered.

It is also the last resort for an unhandled exception: the client gets a JSON 500 in the API's one
error shape (errors.py) and the log gets the traceback with event=api-unhandled, instead of
Starlette's plain-text "Internal Server Error".
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.api.auth import Auth
from appliance.api.errors import error_response

log = logging.getLogger("savd.api")

#: methods that never change anything (and whose routes read no body)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestGuard:
    def __init__(self, app: ASGIApp, auth: Auth, body_limit_bytes: int) -> None:
        self.app = app
        self.auth = auth
        self.limit = body_limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self._guarded(scope, receive, tracked)
        except Exception:
            log.exception("event=api-unhandled method=%s path=%s", scope.get("method"), scope.get("path"))
            if started:
                raise  # the status line is out: nothing better to send than a cut response
            await error_response(500, "internal error: the request failed inside savd; the log has the "
                                      "details (event=api-unhandled)")(scope, receive, send)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        method = str(scope.get("method", "GET")).upper()
        if method not in SAFE_METHODS:
            refusal = self.auth.write_refusal(headers.get("authorization", ""))
            if refusal is not None:
                response = error_response(refusal.status_code, refusal.message, refusal.headers)
                await response(scope, receive, send)
                return
        declared = headers.get("content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self.limit):
            await self._too_large(scope, receive, send)
            return
        if method in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        body = await self._read_body(receive)
        if body is None:
            await self._too_large(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the limit (the rest is never read)."""
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: the route sees an empty body
                break
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        log.warning("event=api-body-refused method=%s path=%s limit_bytes=%d", scope.get("method"),
                    scope.get("path"), self.limit)
        response = error_response(413, f"request body over the limit of {self.limit} bytes "
                                       "([api] body_limit_bytes)", {"Connection": "close"},
                                  limit_bytes=self.limit)
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the buffered body once, then waits on the real one (for a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replay
