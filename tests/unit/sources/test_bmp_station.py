"""BmpStation over real loopback TCP: events in order, status rows, RouterDown on close, a broken
router closed alone while the other keeps streaming, and a failing consumer that does not stop it."""

from __future__ import annotations

import asyncio

import pytest
from support.waiting import until
from test_bmp import (
    NH4,
    ORIGIN,
    PEER_AS,
    as_path,
    initiation,
    monitoring,
    nlri,
    peer_up,
    update,
)

from appliance.sources.paths.events import BmpEvent, Malformed, PeerUp, RouterDown, RouterUp, Routes
from appliance.sources.paths.station import BmpStation, StationError


def routes_msg(third_octet: int) -> bytes:
    return monitoring(update(attrs=ORIGIN + as_path((2, [PEER_AS])) + NH4,
                             announced=nlri(f"198.18.{third_octet}.0/24")))


def test_station_streams_events_and_reports_router_down_on_close() -> None:
    async def scenario() -> None:
        events: list[BmpEvent] = []
        station = BmpStation(("127.0.0.1", 0), router_names={"127.0.0.1": "edge-1"}, on_event=events.append,
                             clock=lambda: 1234.5)
        await station.start()
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", station.port)
            writer.write(initiation("r1") + peer_up() + routes_msg(1) + routes_msg(2)[:20])
            await writer.drain()
            await until(lambda: len(events) >= 3 or events, "the first routes message", 5, 0.02)
            [row] = station.status()
            assert row["router"] == "edge-1" and row["address"] == "127.0.0.1"
            assert (row["connected_since"], row["peers_up"], row["routes_held"], row["messages"],
                    row["malformed"]) == (1234.5, 1, 1, 3, 0)
            writer.write(routes_msg(2)[20:])
            writer.close()
            await until(lambda: isinstance(events[-1], RouterDown) or events[-1], "RouterDown", 5, 0.02)
        finally:
            await station.stop()
        assert [type(e) for e in events] == [RouterUp, PeerUp, Routes, Routes, RouterDown]
        assert events[0] == RouterUp("edge-1", "127.0.0.1", "r1", "Test BMP speaker 1.0")
        assert events[3].announced[0].prefix == "198.18.2.0/24"  # type: ignore[union-attr]
        assert events[-1] == RouterDown("edge-1", "connection closed")
        assert station.status() == []

    asyncio.run(scenario())


def test_broken_router_is_closed_alone_and_consumer_errors_are_contained() -> None:
    async def scenario() -> None:
        events: list[BmpEvent] = []

        def consumer(ev: BmpEvent) -> None:
            events.append(ev)
            if isinstance(ev, PeerUp):
                raise RuntimeError("consumer bug")

        station = BmpStation(("127.0.0.1", 0), on_event=consumer)
        await station.start()
        try:
            _, good_w = await asyncio.open_connection("127.0.0.1", station.port)
            bad_r, bad_w = await asyncio.open_connection("127.0.0.1", station.port)
            good_w.write(initiation("good") + peer_up())
            bad_w.write(initiation("bad") + b"\x07" + bytes(40))
            await asyncio.gather(good_w.drain(), bad_w.drain())
            assert await asyncio.wait_for(bad_r.read(), 5) == b""   # the station closed the bad one
            good_w.write(routes_msg(3))
            await good_w.drain()
            await until(lambda: any(isinstance(e, Routes) for e in events) or events, "good router's routes",
                        5, 0.02)
            assert [r["router"] for r in station.status()] == ["good"]
        finally:
            await station.stop()
        by_router = {(type(e).__name__, getattr(e, "router", "")) for e in events}
        assert ("Malformed", "bad") in by_router and ("RouterDown", "bad") in by_router
        assert ("Routes", "good") in by_router
        assert RouterDown("good", "station stopped") in events
        bad_down = [e for e in events if isinstance(e, RouterDown) and e.router == "bad"]
        assert bad_down == [RouterDown("bad", "framing lost")]
        assert sum(isinstance(e, Malformed) for e in events) == 1
        good_w.close()
        bad_w.close()

    asyncio.run(scenario())


def test_listen_error_names_the_address() -> None:
    async def scenario() -> None:
        station = BmpStation(("127.0.0.1", 0), on_event=lambda ev: None)
        await station.start()
        try:
            clash = BmpStation(("127.0.0.1", station.port), on_event=lambda ev: None)
            with pytest.raises(StationError, match=rf"127\.0\.0\.1:{station.port}"):
                await clash.start()
            missing = BmpStation(("127.0.0.1", 0), netns="savd-no-such-ns", on_event=lambda ev: None)
            with pytest.raises(StationError, match="savd-no-such-ns"):
                await missing.start()
        finally:
            await station.stop()

    asyncio.run(scenario())
