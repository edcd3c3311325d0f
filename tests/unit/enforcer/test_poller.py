"""The appliance-side poller against the enforcer's real HTTP endpoint (httpd.serve on loopback)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from appliance.config import EnforcerConfig
from appliance.enforcer.httpd import serve
from appliance.enforcer.poller import EnforcerPoller, PollError, factory, samples_from
from appliance.model import Severity
from appliance.monitor import Monitor
from appliance.monitor.counters import CounterSample

DOC = {
    "node": "r",
    "rules": [],
    "samples": [
        {
            "router": "r",
            "interface": "eth1",
            "source_prefix": "0.0.0.0/0",
            "action": "discard",
            "packets": 20,
            "bytes": 560,
            "spoofed": True,
        },
        {
            "router": "r",
            "interface": "eth1",
            "source_prefix": "198.18.1.0/24",
            "action": "accept",
            "packets": 7,
            "bytes": 700,
            "spoofed": False,
        },
        {"router": "r", "interface": "eth1"},  # malformed: skipped, logged
    ],
}


class Ctx:
    def __init__(self) -> None:
        self.samples: list[CounterSample] = []
        self.monitor = Monitor()

    def report_counters(self, samples: Any, router: str = "") -> None:
        self.samples.extend(samples)


def test_samples_are_attributed_to_the_configured_router() -> None:
    samples = samples_from("r1", DOC)
    assert [(s.router, s.source_prefix, s.packets, s.spoofed) for s in samples] == [
        ("r1", "0.0.0.0/0", 20, True),
        ("r1", "198.18.1.0/24", 7, False),
    ]


def test_poller_reads_http_endpoints_and_skips_dead_ones() -> None:
    asked: list[dict[str, list[str]]] = []

    async def run() -> tuple[int, Ctx, int]:
        async def handler(path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
            asked.append(query)
            return (200, DOC) if path == "/counters" else (404, {})

        server = await serve("127.0.0.1", 0, handler)
        port = server.sockets[0].getsockname()[1]
        dead = await serve("127.0.0.1", 0, handler)
        dead_port = dead.sockets[0].getsockname()[1]
        dead.close()
        await dead.wait_closed()
        ctx = Ctx()
        poller = EnforcerPoller(
            [
                EnforcerConfig("r1", url=f"http://127.0.0.1:{port}"),
                EnforcerConfig("r2", url=f"http://127.0.0.1:{dead_port}"),
            ]
        )
        answered = await poller.poll_once(ctx)
        server.close()
        await server.wait_closed()
        return answered, ctx, len(poller.targets)

    answered, ctx, targets = asyncio.run(run())
    assert (answered, targets) == (1, 2)
    assert asked == [{}]   # a fresh listing: the drift check needs two distinct ones
    assert {(s.router, s.source_prefix) for s in ctx.samples} == {
        ("r1", "0.0.0.0/0"),
        ("r1", "198.18.1.0/24"),
    }


def test_factory_only_with_configured_enforcers() -> None:
    class Config:
        enforcers = (EnforcerConfig("r1", netns="sv01-r1"),)

    class Context:
        config = Config()

    class Empty:
        class config:
            enforcers = ()

    poller = factory(Context())
    assert poller is not None and poller.targets[0].netns == "sv01-r1"
    assert factory(Empty()) is None


def test_an_unreachable_enforcer_is_an_alarm_cleared_when_it_answers() -> None:
    """A stopped enforcer removes its table (fail open): savd must say so, not only log poll failures."""
    up = {"r1": False}

    def fetcher(target: Any) -> dict[str, Any]:
        if not up[target.router]:
            raise PollError(target.router, "connection refused")
        return DOC

    ctx = Ctx()
    poller = EnforcerPoller([EnforcerConfig("r1", url="http://127.0.0.1:9")], fetcher=fetcher)

    def alarms() -> list[str]:
        return [a.id for a in ctx.monitor.alarms.active("enforcer-unreachable")]

    assert asyncio.run(poller.poll_once(ctx)) == 0
    assert alarms() == ["enforcer-unreachable/r1"]
    asyncio.run(poller.poll_once(ctx))
    assert alarms() == ["enforcer-unreachable/r1"] and len(ctx.monitor.bus.recent()) == 1  # raised once
    up["r1"] = True
    assert asyncio.run(poller.poll_once(ctx)) == 1
    assert alarms() == []


def session_doc(established: bool, down_for_s: float | None, diagnosis: str = "zebra-down") -> dict[str, Any]:
    since = None if down_for_s is None else time.time() - down_for_s
    return {**DOC, "session": {"peer": "198.18.254.1", "established": established, "down_since": since,
                               "last_reason": "notification received (5,0)", "diagnosis": diagnosis}}


def test_an_enforcer_session_down_15s_is_an_alarm_cleared_when_established() -> None:
    """A session FRR refuses only showed as rules missing (drift): savd names the router and the cause."""
    docs = {"r1": session_doc(False, 20.0)}
    ctx = Ctx()
    poller = EnforcerPoller([EnforcerConfig("r1", url="http://127.0.0.1:9")],
                            fetcher=lambda t: docs[t.router])

    def alarms() -> list[Any]:
        return list(ctx.monitor.alarms.active("enforcer.session-down"))

    assert asyncio.run(poller.poll_once(ctx)) == 1
    (alarm,) = alarms()
    assert alarm.id == "enforcer.session-down/r1"
    (event,) = [r.event for r in ctx.monitor.bus.recent()]
    assert (event.type, event.severity, event.source) == ("enforcer.session-down", Severity.ERROR,
                                                          "enforcer:r1")
    assert event.message.startswith("enforcer of r1: BGP session with FRR down for 20 s "
                                    "(notification received (5,0)): ")
    assert "zebra is not running in r1: bgpd refuses the enforcer's session (NOTIFICATION 5/0)" \
        in event.message
    assert (event.fields["router"], event.fields["diagnosis"]) == ("r1", "zebra-down")
    asyncio.run(poller.poll_once(ctx))
    assert len(ctx.monitor.bus.recent()) == 1 and len(alarms()) == 1      # raised once
    docs["r1"] = session_doc(True, None, "")
    asyncio.run(poller.poll_once(ctx))
    assert alarms() == []
    cleared = ctx.monitor.bus.recent()[-1].event
    assert (cleared.severity, cleared.message) == (Severity.INFO,
                                                   "enforcer of r1: BGP session with FRR established again")
    asyncio.run(poller.poll_once(ctx))
    assert len(ctx.monitor.bus.recent()) == 2                             # cleared once


def test_a_short_outage_or_an_older_enforcer_raises_nothing() -> None:
    docs = {"r1": session_doc(False, 5.0), "r2": DOC, "r3": session_doc(True, None, "")}
    ctx = Ctx()
    poller = EnforcerPoller([EnforcerConfig(r, url="http://127.0.0.1:9") for r in docs],
                            fetcher=lambda t: docs[t.router])
    assert asyncio.run(poller.poll_once(ctx)) == 3
    assert ctx.monitor.bus.recent() == [] and list(ctx.monitor.alarms.active()) == []


def test_a_new_diagnosis_refreshes_the_raised_alarm() -> None:
    docs = {"r1": session_doc(False, 20.0, "")}
    ctx = Ctx()
    poller = EnforcerPoller([EnforcerConfig("r1", url="http://127.0.0.1:9")],
                            fetcher=lambda t: docs[t.router])
    asyncio.run(poller.poll_once(ctx))
    docs["r1"] = session_doc(False, 50.0, "interface-unknown")
    asyncio.run(poller.poll_once(ctx))
    first, second = [r.event for r in ctx.monitor.bus.recent()]
    assert "not diagnosed yet" in first.message and "does not know the enforcer's interface" in second.message
    assert [a.id for a in ctx.monitor.alarms.active()] == ["enforcer.session-down/r1"]
