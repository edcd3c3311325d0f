"""Two real ExaBGP 5.0.15 processes peering on loopback through ExaBgpSpeaker: commands, acks,
received updates, and restart with backoff after a crash (session down -> restarted -> up again)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.speakers.exabgp import (
    ExaBgpSpeaker,
    ExaNeighbor,
    SessionDown,
    SessionUp,
    SpeakerEvent,
    SpeakerRestarted,
    UpdateReceived,
)
from rpki.localcache import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def wait_for(
    events: AsyncIterator[SpeakerEvent], kind: type, what: str, timeout_s: float = 30.0
) -> list[SpeakerEvent]:
    """Collect events until one of `kind` arrives; fail naming what was awaited and what was seen."""
    seen: list[SpeakerEvent] = []
    try:
        async with asyncio.timeout(timeout_s):
            async for ev in events:
                seen.append(ev)
                if isinstance(ev, kind):
                    return seen
    except TimeoutError:
        pass
    raise AssertionError(f"timed out waiting for {what}; saw {seen}")


def test_flow_updates_acks_and_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        port = free_port()
        a = ExaBgpSpeaker(
            tmp_path / "a",
            [
                ExaNeighbor(
                    "127.0.0.2",
                    "127.0.0.1",
                    65001,
                    65002,
                    "198.18.0.1",
                    ("ipv4 flow",),
                    passive=True,
                    name="b",
                )
            ],
            listen=("127.0.0.1", port),
        )
        b = ExaBgpSpeaker(
            tmp_path / "b",
            [
                ExaNeighbor(
                    "127.0.0.1", "127.0.0.2", 65002, 65001, "198.18.0.2", ("ipv4 flow",), port=port, name="a"
                )
            ],
        )
        try:
            await a.start()
            await b.start()
            a_events, b_events = a.events(), b.events()
            assert (await wait_for(b_events, SessionUp, "b up"))[-1] == SessionUp("127.0.0.1", "a")
            assert b.established() == {"127.0.0.1"}
            rule = (
                "neighbor 127.0.0.1 announce flow route { match { source 198.18.1.0/24; } then { discard; } }"
            )
            assert await b.send(rule) is True
            assert await b.send("announce nonsense") is False
            seen = await wait_for(a_events, UpdateReceived, "flow update on a")
            update = seen[-1]
            assert isinstance(update, UpdateReceived)
            assert update.name == "b"
            assert update.announce["ipv4 flow"]["no-nexthop"][0]["source-ipv4"] == ["198.18.1.0/24"]
            pid = a.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            seen = await wait_for(a_events, SpeakerRestarted, "restart after SIGKILL")
            assert SessionDown("127.0.0.2", "b", "exabgp exited with -9") in seen
            assert a.pid not in (None, pid) and a.restarts == 1
            seen = await wait_for(a_events, UpdateReceived, "re-sent flow after restart")
            assert any(isinstance(e, SessionUp) for e in seen)
            assert a.established() == {"127.0.0.2"}
        finally:
            await a.stop()
            await b.stop()
        assert a.pid is None and b.pid is None

    asyncio.run(scenario())
