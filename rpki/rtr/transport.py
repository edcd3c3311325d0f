"""How the RTR session reaches a cache: a connector returning asyncio streams (TCP first).

The session never opens sockets itself, so tests can hand it in-memory or fake-cache streams and other
transports (SSH, TLS per RFC 6810 section 7) can be added without touching the state machine.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

READ_LIMIT = 8 << 20  # large stream buffer: a full sync arrives in few, big reads


class Connector(Protocol):
    async def __call__(
        self, host: str, port: int, timeout_s: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


async def tcp_connect(
    host: str, port: int, timeout_s: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Plain TCP (RFC 8210 section 9 allows it on trusted networks; caches here are on loopback)."""
    return await asyncio.wait_for(asyncio.open_connection(host, port, limit=READ_LIMIT), timeout_s)
