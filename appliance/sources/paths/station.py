"""The BMP station: a TCP server routers connect to (FRR `bmp connect`), one BmpDecoder per connection.

Owns the listening socket (optionally inside a network namespace), the connections and their decoders,
and hands every event to `on_event` in arrival order, synchronously on the event loop (the consumer
queues what it cannot do at once). A router's TCP close, a Termination, lost framing or `stop()` ends
with exactly one RouterDown for that connection, so the consumer can withdraw all its paths.

A bad router never hurts the others: a message that does not decode is a Malformed event and the
session goes on; a stream that cannot be split into messages (bad version or length > 16 MiB) is a
Malformed event and that one connection is closed. An exception in `on_event` is logged, not raised
into the connection.

Network namespaces: the listening socket is made inside the namespace (appliance/netns.py) and handed to
asyncio.start_server(sock=...).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from appliance.errors import ExternalError
from appliance.netns import run_in
from appliance.sources.paths.bmp import AttrCache, BmpDecoder
from appliance.sources.paths.events import BmpEvent

log = logging.getLogger("savd.bmp")

READ_CHUNK = 256 * 1024


class StationError(ExternalError, OSError):
    """The station could not listen (address in use, namespace missing, no permission)."""


def listen_socket(host: str, port: int, netns: str | None = None, backlog: int = 64) -> socket.socket:
    """A non-blocking listening TCP socket on host:port, inside `netns` when given."""

    def work() -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    try:
        return run_in(netns, work, "bmp-listen")
    except (OSError, ValueError, OverflowError) as exc:   # no namespace, address in use, bad port
        where = f"{host}:{port}" + (f" in netns {netns}" if netns else "")
        raise StationError(f"bmp station cannot listen on {where}: {exc}") from exc


@dataclass(slots=True)
class _Connection:
    decoder: BmpDecoder
    writer: asyncio.StreamWriter
    connected_since: float
    task: asyncio.Task[None] | None = None


class BmpStation:
    """BMP station listening on `listen` (host, port; port 0 picks one, see `port`)."""

    def __init__(self, listen: tuple[str, int], *, netns: str | None = None,
                 router_names: Mapping[str, str] | None = None, on_event: Callable[[BmpEvent], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.host, self.requested_port = listen
        self.netns = netns
        self.router_names = dict(router_names or {})
        self.on_event = on_event
        self.clock = clock
        self.attr_cache = AttrCache()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: dict[int, _Connection] = {}
        self._next_id = 0

    async def start(self) -> None:
        sock = await asyncio.to_thread(listen_socket, self.host, self.requested_port, self.netns)
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=READ_CHUNK)
        log.info("event=bmp_listen host=%s port=%d netns=%s", self.host, self.port, self.netns or "-")

    async def stop(self) -> None:
        """Close the listener and every connection (each ends with its RouterDown)."""
        if self._server is not None:
            self._server.close()
        tasks = [c.task for c in self._conns.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def status(self) -> list[dict[str, Any]]:
        """One row per connected router, for `savd status` and the API."""
        rows = []
        for conn in self._conns.values():
            dec = conn.decoder
            rows.append({
                "router": dec.router,
                "address": dec.address,
                "connected_since": conn.connected_since,
                "sys_name": dec.sys_name,
                "sys_descr": dec.sys_descr,
                "peers_up": dec.peers_up(),
                "routes_held": dec.routes_held(),
                "messages": dec.counters["messages"],
                "malformed": dec.counters["malformed"],
                "skipped": {k: v for k, v in dec.counters.items() if k.startswith("skipped_")},
            })
        return rows

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        address = _normal_address(str(peer[0]))
        decoder = BmpDecoder(address, self.router_names.get(address), attr_cache=self.attr_cache)
        conn_id = self._next_id
        self._next_id += 1
        conn = _Connection(decoder, writer, self.clock(), asyncio.current_task())
        self._conns[conn_id] = conn
        log.info("event=bmp_connect address=%s port=%s", address, peer[1])
        reason = "connection closed"
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                self._emit(decoder.feed(data))
                if decoder.closed:
                    reason = "framing lost"
                    break
                if decoder.terminated:
                    break
        except asyncio.CancelledError:
            reason = "station stopped"
        except OSError as exc:
            reason = f"connection error: {exc}"
        finally:
            del self._conns[conn_id]
            writer.close()
            self._emit(decoder.close(reason))
            log.info("event=bmp_disconnect router=%s address=%s reason=%r messages=%d malformed=%d",
                     decoder.router, address, decoder.terminated or reason, decoder.counters["messages"],
                     decoder.counters["malformed"])

    def _emit(self, events: list[BmpEvent]) -> None:
        on_event = self.on_event
        for ev in events:
            try:
                on_event(ev)
            except Exception:
                log.exception("event=bmp_consumer_error kind=%s", type(ev).__name__)


def _normal_address(addr: str) -> str:
    """IPv4-mapped IPv6 peer addresses (dual-stack listener) as plain IPv4, to match router_names."""
    return addr[7:] if addr.startswith("::ffff:") and "." in addr else addr
