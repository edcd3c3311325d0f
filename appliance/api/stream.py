"""The event bus as a server-sent events stream (push, beside the polled GET /api/v1/events; seeds/002 4.3).

Each event is one SSE message whose `id` is its bus sequence number, so a client that reconnects with
`Last-Event-ID` (browsers do it by themselves) gets what it missed from the ring buffer, then live events.
A client that cannot keep up is never buffered without bound: each stream has a bounded queue; once it is
full, events are dropped until the client has read what is queued, and then one `dropped` message says
how many and which sequence numbers (GET /api/v1/events?since=... has them while they are in the ring).
Heartbeats keep proxies from closing an idle stream and tell the client the stream is alive.

The bus calls subscribers synchronously from whichever thread publishes; a publish from another thread
than the stream's event loop is handed over with call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from appliance.monitor.bus import EventBus, Record, RecordFilter

MEDIA_TYPE = "text/event-stream"


@dataclass(frozen=True, slots=True)
class StreamOptions:
    heartbeat_s: float = 15.0
    #: events queued for one client before the stream drops (and says so)
    queue: int = 256
    #: reconnect delay a client should use (the SSE `retry` field), milliseconds
    retry_ms: int = 2000


def frame(data: object, event: str = "", id_: int | None = None) -> str:
    """One SSE message; the data is one line of JSON."""
    head = f"id: {id_}\n" if id_ is not None else ""
    head += f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'), sort_keys=True)}\n\n"


class _Subscription:
    """One client's bounded queue on the bus, with the drop bookkeeping."""

    def __init__(self, bus: EventBus, where: RecordFilter, capacity: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self.where = where
        self.queue: asyncio.Queue[Record] = asyncio.Queue(capacity)
        self.dropped = 0
        self.dropped_from = 0
        self.dropped_to = 0
        self.unsubscribe = bus.subscribe(self._on_record)

    def _on_record(self, record: Record) -> None:
        if not self.where.matches(record):
            return
        if threading.get_ident() == self.thread:
            self._put(record)
        else:
            self.loop.call_soon_threadsafe(self._put, record)

    def _put(self, record: Record) -> None:
        if self.dropped == 0:
            try:
                self.queue.put_nowait(record)
                return
            except asyncio.QueueFull:
                self.dropped_from = record.seq
        # dropping until the client has read what is queued, so no event is sent after a gap unannounced
        self.dropped += 1
        self.dropped_to = record.seq

    def take_dropped(self) -> dict[str, int] | None:
        if not self.dropped or not self.queue.empty():
            return None
        notice = {"dropped": self.dropped, "from_seq": self.dropped_from, "to_seq": self.dropped_to}
        self.dropped = 0
        return notice


async def event_frames(bus: EventBus, where: RecordFilter, last_id: int,
                       options: StreamOptions = StreamOptions()) -> AsyncGenerator[str, None]:
    """SSE messages: the ring's events after `last_id` that match, then live ones, heartbeats between.

    A `last_id` beyond the bus's newest (savd restarted: sequence numbers start again at 1) resumes from
    the start of the ring; one older than the ring's oldest event gets a `dropped` message first.
    """
    sub = _Subscription(bus, where, options.queue)
    try:
        yield f"retry: {options.retry_ms}\n\n"
        if last_id > bus.last_seq:
            last_id = 0
        oldest = bus.dropped + 1  # seq of the oldest event still in the ring
        if 0 < last_id < oldest - 1:
            yield frame({"dropped": oldest - 1 - last_id, "from_seq": last_id + 1, "to_seq": oldest - 1,
                         "reason": "fell off the ring buffer"}, "dropped")
        sent = last_id
        for record in bus.recent(since=last_id, limit=bus.last_seq or 1, where=where):
            yield frame(record.to_dict(), id_=record.seq)
            sent = record.seq
        while True:
            try:
                record = await asyncio.wait_for(sub.queue.get(), options.heartbeat_s)
            except TimeoutError:
                yield frame({"last_seq": bus.last_seq, "time": time.time()}, "heartbeat")
                continue
            if record.seq > sent:  # a record both replayed and queued is sent once
                yield frame(record.to_dict(), id_=record.seq)
                sent = record.seq
            notice = sub.take_dropped()
            if notice is not None:
                yield frame({**notice, "reason": "the client read too slowly"}, "dropped")
    finally:
        sub.unsubscribe()
