"""One error body for every API error: `{"message": "<what went wrong>", ...optional fields}`.

401, 403, 404, 405, 409, 413, 422, 500 and 507 all answer with a JSON object whose `message` is a
sentence for an operator; some add fields a client can act on (`detail`: the validation errors of a
422; `error` and `kind`: a journal failure; `limit_bytes`: a 413). FastAPI's own shapes
(`{"detail": ...}` for Starlette's 404/405, plain text for an unhandled exception) never reach a
client: the handlers here replace them, and guard.RequestGuard answers an unhandled exception.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance.state import StateError, StateErrorKind

log = logging.getLogger("savd.api")


def error_response(status_code: int, message: str, headers: Mapping[str, str] | None = None,
                   **fields: Any) -> JSONResponse:
    """The API's one error shape."""
    return JSONResponse(status_code=status_code, content={"message": message, **fields},
                        headers=dict(headers) if headers else None)


def validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Validation errors without the raw input objects (which may not be JSON)."""
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()]


def state_error_status(exc: StateError) -> int:
    """507 Insufficient Storage when the disk is full (the client may retry later), 500 otherwise."""
    return status.HTTP_507_INSUFFICIENT_STORAGE if exc.kind is StateErrorKind.DISK_FULL else \
        status.HTTP_500_INTERNAL_SERVER_ERROR


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception a route can raise to the one error shape."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(status.HTTP_422_UNPROCESSABLE_CONTENT, validation_message(exc),
                              detail=jsonable_errors(exc))

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException, and Starlette's 404/405
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(StateError)
    async def _state(request: Request, exc: StateError) -> JSONResponse:
        # the store applies nothing when its journal write fails, and raised the journal alarm itself
        log.error("event=api-journal-failed method=%s path=%s kind=%s", request.method, request.url.path,
                  exc.kind)
        return error_response(
            state_error_status(exc),
            f"not stored, nothing changed: the state journal could not be written ({exc.kind}); "
            "see /api/v1/alarms",
            error="journal-write-failed", kind=str(exc.kind))
