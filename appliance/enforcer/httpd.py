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
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["serve"]

Handler = Callable[[str, dict[str, list[str]]], Awaitable[tuple[int, Any]]]   # (path, query)
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Error"}


async def _respond(writer: asyncio.StreamWriter, status: int, body: Any) -> None:
    # a /counters document of a 10k-route table is megabytes: encoded off the event loop, which applies routes
    data = await asyncio.to_thread(lambda: json.dumps(body, sort_keys=True).encode() + b"\n")
    head = (f"HTTP/1.0 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
    writer.write(head + data)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def serve(host: str, port: int, handler: Handler) -> asyncio.base_events.Server:
    """Start serving; `handler(path, query)` returns (status, JSON body)."""

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
                    path, _, query = parts[1].partition("?")
                    status, body = await handler(path, urllib.parse.parse_qs(query))
                except Exception as exc:   # one bad request must not stop the endpoint
                    log.exception("event=enforcer-http-error path=%s", parts[1])
                    status, body = 500, {"error": repr(exc)}
                await _respond(writer, status, body)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(on_client, host, port)
