"""A tiny read-only HTTP/1.0 JSON endpoint on the node: GET /counters, /rules, /status, /healthz.

Why hand-written on asyncio streams and not FastAPI/uvicorn: the enforcer runs inside every router's
namespace next to FRR; four read-only GETs do not justify an ASGI stack per node, and the appliance
reads it with any HTTP client (or reads the counters file via `ip netns exec`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["serve"]

Handler = Callable[[str], Awaitable[tuple[int, Any]]]
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Error"}


async def _respond(writer: asyncio.StreamWriter, status: int, body: Any) -> None:
    data = json.dumps(body, sort_keys=True).encode() + b"\n"
    head = (f"HTTP/1.0 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
    writer.write(head + data)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def serve(host: str, port: int, handler: Handler) -> asyncio.base_events.Server:
    """Start serving; `handler(path)` returns (status, JSON body)."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 10)
            parts = request.decode(errors="replace").split()
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass
            if len(parts) < 2:
                await _respond(writer, 400, {"error": "malformed request line"})
            elif parts[0] != "GET":
                await _respond(writer, 405, {"error": f"method {parts[0]} not allowed"})
            else:
                try:
                    status, body = await handler(parts[1].split("?", 1)[0])
                except Exception as exc:   # one bad request must not stop the endpoint
                    log.exception("event=enforcer-http-error path=%s", parts[1])
                    status, body = 500, {"error": repr(exc)}
                await _respond(writer, status, body)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(on_client, host, port)
