"""Push beside poll (seeds/002 4.3): GET /api/v1/events/stream served by a real uvicorn on a real socket and
read by a real HTTP client (httpx, and `savd api events --follow`): replay after Last-Event-ID, live
events published from another thread, the filters of GET /api/v1/events, heartbeats, a `dropped` notice
instead of unbounded buffering, and a server that still stops while streams are open."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from appliance.api import ApiPorts, create_app
from appliance.api.cli import sse_messages
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.api.stream import StreamOptions, event_frames
from appliance.config import ApiConfig
from appliance.daemon import API_GRACE_S
from appliance.model import Event, Severity
from appliance.monitor import EventBus, Monitor
from appliance.monitor.bus import RecordFilter
from appliance.monitor.counters import CounterBoard
from appliance.monitor.events import BgpSession, EventType, Operational, SpoofingSeen
from appliance.monitor.metrics import Metrics
from appliance.state import StateStore


@dataclass
class Served:
    url: str
    monitor: Monitor
    server: uvicorn.Server
    thread: threading.Thread


def _serve(monitor: Monitor) -> Served:
    counters, store = CounterBoard(), StateStore()
    ports = ApiPorts(store, RulesHolder(), RpkiStatusBoard(), PushedRules(store), monitor, counters,
                     Metrics(monitor, counters))
    app = create_app(ports, ApiConfig(token="t"))
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=API_GRACE_S))  # as the daemon's
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    return Served(f"http://127.0.0.1:{sock.getsockname()[1]}", monitor, server, thread)


@pytest.fixture
def served() -> Iterator[Served]:
    s = _serve(Monitor(bus=EventBus(capacity=50)))
    yield s
    s.server.should_exit = True
    s.thread.join(15)


def spoof(router: str, iface: str = "eth1") -> SpoofingSeen:
    return SpoofingSeen(router, iface, "198.18.3.0/24", 10, 840)


def read(url: str, n: int, params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
         kinds: tuple[str, ...] = ("message",)) -> list[tuple[str, str, dict[str, object]]]:
    """The messages of the given kinds on a fresh connection, until `n` that are not heartbeats."""
    out = []
    with httpx.stream("GET", url + "/api/v1/events/stream", params=params, headers=headers,
                      timeout=httpx.Timeout(10.0)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for kind, id_, data in sse_messages(r.iter_lines()):
            if kind in kinds:
                out.append((kind, id_, json.loads(data)))
                if sum(k != "heartbeat" for k, _, _ in out) == n:
                    break
    return out


def test_replay_then_live_events_from_another_thread_with_filters(served: Served) -> None:
    m = served.monitor
    m.emit(spoof("r1"))                                   # 1
    m.emit(BgpSession("exa1", "198.18.0.2", "r1", up=False))  # 2: another category
    m.emit(spoof("r2"))                                   # 3: another router

    got: list[tuple[str, str, dict[str, object]]] = []

    def client() -> None:
        got.extend(read(served.url, 2, {"category": "nsf-event", "router": "r1", "heartbeat_s": "0.2"},
                        kinds=("message", "heartbeat")))

    reader = threading.Thread(target=client)
    reader.start()
    time.sleep(0.8)  # connected, replayed #1, heartbeats while idle
    m.emit(Operational(EventType.DAEMON, "daemon", "not for this filter"))  # 4
    m.emit(spoof("r1", "eth2"))                                             # 5: live, from this thread
    reader.join(10)
    messages = [(i, d) for k, i, d in got if k == "message"]
    assert [i for i, _ in messages] == ["1", "5"]
    assert [(d["seq"], d["router"], d["interface"], d["category"]) for _, d in messages] == [
        (1, "r1", "eth1", "nsf-event"), (5, "r1", "eth2", "nsf-event")]
    assert any(k == "heartbeat" for k, _, _ in got)
    polled = httpx.get(served.url + "/api/v1/events", params={"since": 4}).json()["events"]
    assert messages[1][1] == polled[0]  # pushed and polled: the same record


def test_resume_with_last_event_id_and_since(served: Served) -> None:
    for i in range(5):
        served.monitor.emit(spoof(f"r{i}"))
    assert [d["seq"] for _, _, d in read(served.url, 2, headers={"Last-Event-ID": "3"})] == [4, 5]
    assert [d["seq"] for _, _, d in read(served.url, 1, {"since": "4"})] == [5]
    # Last-Event-ID wins over since; an id beyond the newest (savd restarted) starts from the ring's start
    assert [d["seq"] for _, _, d in read(served.url, 1, {"since": "1"}, {"Last-Event-ID": "4"})] == [5]
    assert [d["seq"] for _, _, d in read(served.url, 1, headers={"Last-Event-ID": "999"})] == [1]
    once = httpx.get(served.url + "/api/v1/events/stream", params={"once": "true", "since": "3"})
    assert [d["seq"] for _, _, d in ((k, i, json.loads(x)) for k, i, x in sse_messages(once.text.split("\n")))
            ] == [4, 5]


def test_a_resume_older_than_the_ring_says_what_was_lost(served: Served) -> None:
    for i in range(60):  # the ring holds 50: 1..10 fell off
        served.monitor.emit(spoof(f"r{i}"))
    (dropped, first) = read(served.url, 2, headers={"Last-Event-ID": "5"}, kinds=("message", "dropped"))
    assert dropped[0] == "dropped" and dropped[2] == {"dropped": 5, "from_seq": 6, "to_seq": 10,
                                                      "reason": "fell off the ring buffer"}
    assert first[2]["seq"] == 11


def test_errors_are_answered_before_streaming(served: Served) -> None:
    bad = httpx.get(served.url + "/api/v1/events/stream", params={"severity": "loud"})
    assert bad.status_code == 422 and "message" in bad.json()


def test_a_slow_client_is_dropped_with_a_notice_not_buffered() -> None:
    """The stream's queue holds 4: what comes while it is full is dropped until the client has read what
    is queued; then one `dropped` message names the gap, and live events follow."""

    async def run() -> list[tuple[str, dict[str, object]]]:
        bus = EventBus()
        frames = event_frames(bus, RecordFilter(), 0, StreamOptions(heartbeat_s=5, queue=4))
        assert (await anext(frames)).startswith("retry:")
        waiting = asyncio.ensure_future(anext(frames))  # subscribed, waiting for the first event
        await asyncio.sleep(0)
        for i in range(20):
            bus.publish(_event(i))
        out = [await waiting]
        for _ in range(4):  # 2, 3, 4, then the notice
            out.append(await anext(frames))
        bus.publish(_event(99))
        out.append(await anext(frames))
        await frames.aclose()
        assert bus._subscribers == []  # the closed stream unsubscribed
        return [_parse(f) for f in out]

    got = asyncio.run(run())
    assert [(k, d.get("seq")) for k, d in got[:4]] == [("message", 1), ("message", 2), ("message", 3),
                                                        ("message", 4)]
    assert got[4] == ("dropped", {"dropped": 16, "from_seq": 5, "to_seq": 20,
                                  "reason": "the client read too slowly"})
    assert got[5][1]["seq"] == 21, got


def _event(i: int) -> Event:
    return Event(1.0, "test", "daemon", Severity.INFO, f"event {i}")


def _parse(frame: str) -> tuple[str, dict[str, object]]:
    ((kind, _, data),) = list(sse_messages(frame.split("\n")))
    return kind, json.loads(data)


def test_the_server_stops_with_streams_open() -> None:
    s = _serve(Monitor())
    opened = threading.Event()

    def client() -> None:
        try:
            with httpx.stream("GET", s.url + "/api/v1/events/stream", timeout=httpx.Timeout(30.0)) as r:
                opened.set()
                for _ in r.iter_lines():
                    pass
        except httpx.HTTPError:
            pass

    reader = threading.Thread(target=client, daemon=True)
    reader.start()
    assert opened.wait(10)
    started = time.monotonic()
    s.server.should_exit = True
    s.thread.join(20)
    assert not s.thread.is_alive() and time.monotonic() - started < API_GRACE_S + 3


def test_savd_api_events_follow_prints_json_lines(served: Served) -> None:
    served.monitor.emit(spoof("r1"))
    served.monitor.emit(BgpSession("exa1", "198.18.0.2", "r1", up=False))
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "api", "--url", served.url, "events",
                             "--follow", "--count", "2", "--category", "nsf-event"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    served.monitor.emit(spoof("r3"))  # live
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(e["seq"], e["router"], e["type"]) for e in lines] == [(1, "r1", "spoofing-seen"),
                                                                    (3, "r3", "spoofing-seen")]
