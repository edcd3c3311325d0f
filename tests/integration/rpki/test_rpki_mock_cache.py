"""The RTR session against a tiny scripted fake cache on loopback (mock: StayRTR cannot send bad PDUs).

Each case scripts what the cache answers to each query and asserts what the client sent back (Error
Reports with the right code and the offending PDU) and what reached the tables (nothing half-applied).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from support import waiting

from rpki.rtr import pdu as P
from rpki.rtr.manager import RtrManager
from rpki.rtr.session import CacheConfig, CacheState
from rpki.rtr.transport import Connector, tcp_connect
from rpki.tables import RpkiTables

pytestmark = pytest.mark.integration

SESSION = 0x1234
V4_A = P.Prefix(2, True, "198.18.0.0", 16, 24, 65001)
V4_B = P.Prefix(2, True, "198.19.0.0", 16, 16, 65002)
V6_A = P.Prefix(2, True, "2001:db8::", 32, 48, 65003)
ASPA_A = P.AspaPdu(2, True, 65001, (65010, 65020))

Script = Callable[[int, P.Pdu], list[bytes]]


def full(serial: int, *records: P.Pdu, version: int = 2) -> list[bytes]:
    return [
        P.encode(P.CacheResponse(version, SESSION)),
        *(P.encode(r) for r in records),
        P.encode(P.EndOfData(version, SESSION, serial, 1, 1, 600)),
    ]


@dataclass
class FakeCache:
    """Answers each query with the script's byte strings; records every PDU the client sends."""

    script: Script
    received: list[P.Pdu] = field(default_factory=list)
    connections: int = 0
    connected_at: list[float] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.connected_at.append(time.monotonic())
        conn = self.connections
        try:
            while True:
                head = await reader.readexactly(8)
                length = int.from_bytes(head[4:8], "big")
                body = await reader.readexactly(length - 8)
                query = P.decode(head + body)
                self.received.append(query)
                answer = self.script(conn, query)
                for chunk in answer:
                    if chunk == b"CLOSE":
                        writer.close()
                        return
                    writer.write(chunk)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def errors(self) -> list[P.ErrorReport]:
        return [r for r in self.received if isinstance(r, P.ErrorReport)]


async def until(what: str, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    await waiting.until(predicate, what, timeout_s, interval_s=0.02)


Check = Callable[[FakeCache, RtrManager, RpkiTables], object]


def run_case(script: Script, check: Check, connector: Connector = tcp_connect, **cfg: float) -> None:
    async def main() -> None:
        cache = FakeCache(script)
        port = await cache.start()
        tables = RpkiTables()
        options = {"retry_s": 0.1, **cfg}
        config = CacheConfig("127.0.0.1", port, **options)  # type: ignore[arg-type]
        manager = RtrManager([config], tables, connector=connector)
        await manager.start()
        try:
            result = check(cache, manager, tables)
            if asyncio.iscoroutine(result):
                await result
        finally:
            await manager.stop()
            await cache.stop()

    asyncio.run(main())


def test_mock_corrupt_prefix_length_gets_error_report_and_nothing_applied() -> None:
    bad = bytearray(P.encode(V4_B))
    bad[7] = 19  # length field 19: a truncated IPv4 Prefix PDU
    bad = bad[:19]

    def script(conn: int, query: P.Pdu) -> list[bytes]:
        return [*full(1, V4_A)[:2], bytes(bad), *full(1)[2:]]

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("an Error Report", lambda: bool(cache.errors()))
        report = cache.errors()[0]
        assert report.code == P.ErrorCode.CORRUPT_DATA and report.pdu == bytes(bad)
        assert tables.counts()["vrp"] == 0
        assert manager.sessions[0].state in (CacheState.ERROR_FATAL, CacheState.CONNECTING,
                                             CacheState.SYNCING)

    run_case(script, check)


def test_mock_unknown_pdu_type_is_reported_as_unsupported() -> None:
    weird = bytes.fromhex("022a000000000008")

    def script(conn: int, query: P.Pdu) -> list[bytes]:
        return [weird]

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("an Error Report", lambda: bool(cache.errors()))
        report = cache.errors()[0]
        assert report.code == P.ErrorCode.UNSUPPORTED_PDU_TYPE and report.pdu == weird

    run_case(script, check)


def test_mock_truncated_stream_applies_nothing_and_recovers() -> None:
    def script(conn: int, query: P.Pdu) -> list[bytes]:
        if conn == 1:
            return [*full(1, V4_A)[:2], P.encode(V4_B)[:10], b"CLOSE"]
        return full(2, V4_A, V4_B)

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("second connection's data", lambda: tables.counts()["vrp"] == 2)
        assert cache.connections >= 2 and not cache.errors()
        assert all(isinstance(q, P.ResetQuery) for q in cache.received)

    run_case(script, check)


def test_mock_cache_reset_answers_serial_query_then_full_resync() -> None:
    def script(conn: int, query: P.Pdu) -> list[bytes]:
        if isinstance(query, P.SerialQuery):
            return [P.encode(P.CacheReset(2))]
        if len([q for q in cache_ref[0].received if isinstance(q, P.ResetQuery)]) == 1:
            return full(1, V4_A, ASPA_A)
        return full(5, V4_B, V6_A)

    cache_ref: list[FakeCache] = []

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("data after Cache Reset", lambda: tables.counts()["vrp"] == 2 and
                    tables.counts()["aspa"] == 0 and manager.sessions[0].serial == 5)
        kinds = [type(q).__name__ for q in cache.received]
        assert kinds[:3] == ["ResetQuery", "SerialQuery", "ResetQuery"]
        assert cache.connections == 1 and not cache.errors()

    def wrapped(conn: int, query: P.Pdu) -> list[bytes]:
        return script(conn, query)

    async def main() -> None:
        cache = FakeCache(wrapped)
        cache_ref.append(cache)
        port = await cache.start()
        tables = RpkiTables()
        manager = RtrManager([CacheConfig("127.0.0.1", port, refresh_s=0.2, retry_s=0.1)], tables)
        await manager.start()
        try:
            await check(cache, manager, tables)
        finally:
            await manager.stop()
            await cache.stop()

    asyncio.run(main())


def test_mock_version_error_downgrades_to_v1() -> None:
    def script(conn: int, query: P.Pdu) -> list[bytes]:
        if isinstance(query, P.ResetQuery) and query.version == 2:
            return [P.encode(P.ErrorReport(1, 4, P.encode(query), "v1 only")), b"CLOSE"]
        return full(3, P.Prefix(1, True, "198.18.0.0", 16, 24, 65001), version=1)

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("v1 data", lambda: tables.counts()["vrp"] == 1)
        assert manager.sessions[0].version == 1
        assert [q.version for q in cache.received if isinstance(q, P.ResetQuery)][:2] == [2, 1]
        assert any(e.fields.get("detail") == "version-downgrade" for e in manager.events)

    run_case(script, check)


def test_mock_no_data_available_is_not_fatal_and_retried() -> None:
    def script(conn: int, query: P.Pdu) -> list[bytes]:
        if conn == 1:
            return [P.encode(P.ErrorReport(2, 2, P.encode(query), "warming up")), b"CLOSE"]
        return full(1, V4_A)

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("data after No Data Available", lambda: tables.counts()["vrp"] == 1)
        assert cache.connections == 2 and not cache.errors()

    run_case(script, check)


@pytest.mark.parametrize(
    ("incremental", "code"),
    [
        ([V4_A], P.ErrorCode.DUPLICATE_ANNOUNCEMENT),
        ([P.Prefix(2, False, "198.19.0.0", 16, 16, 65002)], P.ErrorCode.WITHDRAWAL_OF_UNKNOWN_RECORD),
        ([P.AspaPdu(2, False, 65099, ())], P.ErrorCode.WITHDRAWAL_OF_UNKNOWN_RECORD),
    ],
    ids=["duplicate-announcement", "unknown-prefix-withdrawal", "unknown-aspa-withdrawal"],
)
def test_mock_inconsistent_incremental_update_is_refused_atomically(
    incremental: list[P.Pdu], code: P.ErrorCode
) -> None:
    def script(conn: int, query: P.Pdu) -> list[bytes]:
        if isinstance(query, P.SerialQuery):
            return full(2, V6_A, *incremental)  # V6_A is fine; the bad record must undo it
        return full(1, V4_A, ASPA_A)

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("an Error Report", lambda: bool(cache.errors()))
        report = cache.errors()[0]
        assert report.code == code
        assert P.decode(report.pdu) == incremental[0]
        vrps = tables.snapshot().vrps
        assert [v.prefix for v in vrps] == ["198.18.0.0/16"]  # V6_A never applied

    run_case(script, check, refresh_s=0.1)


def test_mock_prefix_outside_cache_response_is_corrupt_data() -> None:
    def script(conn: int, query: P.Pdu) -> list[bytes]:
        return [P.encode(V4_A)]

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("an Error Report", lambda: bool(cache.errors()))
        assert cache.errors()[0].code == P.ErrorCode.CORRUPT_DATA
        assert tables.counts()["vrp"] == 0

    run_case(script, check)


def test_mock_fatal_error_report_is_never_answered_and_raises_the_session_alarm() -> None:
    def script(conn: int, query: P.Pdu) -> list[bytes]:
        return [P.encode(P.ErrorReport(2, 1, P.encode(query), "internal error")), b"CLOSE"]

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("two connections", lambda: cache.connections >= 2)
        session = manager.sessions[0]
        assert not cache.errors()  # RFC 8210 section 5.11: no Error Report about an Error Report
        assert "internal error" in session.last_error and tables.counts()["vrp"] == 0
        (down,) = [e for e in manager.events if e.alarm]
        assert down.type == "rtr-session" and down.fields["alarm_id"] == f"rtr-session/{session.name}"

    run_case(script, check, retry_s=0.1)


def test_mock_serial_notify_triggers_serial_query_and_up_event_clears() -> None:
    def script(conn: int, query: P.Pdu) -> list[bytes]:
        if isinstance(query, P.SerialQuery):
            return full(2, V4_B)  # the incremental answer: one more VRP
        return [*full(1, V4_A), P.encode(P.SerialNotify(2, SESSION, 2))]

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("the notified change", lambda: tables.counts()["vrp"] == 2)
        kinds = [type(q).__name__ for q in cache.received]
        assert kinds == ["ResetQuery", "SerialQuery"] and manager.sessions[0].serial == 2
        ups = [e for e in manager.events if e.fields.get("up") == "true"]
        assert len(ups) == 1 and not any(e.alarm for e in manager.events)

    run_case(script, check, refresh_s=3600)


# --- issue 12 ------------------------------------------------------------------------------------------


def died(manager: RtrManager) -> list[str]:
    return [e.fields["error"] for e in manager.events if e.fields.get("detail") == "task-died"]


def test_mock_prefix_header_claiming_length_8_at_end_of_write(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 12: `01 04 0000 00000008` ending a write killed the session (IndexError, no log, no
    reconnect). Now: an Error Report quoting the header, a log line, a reconnect and the next sync."""
    header = bytes.fromhex("0104000000000008")

    def script(conn: int, query: P.Pdu) -> list[bytes]:
        if conn == 1:
            return [P.encode(P.CacheResponse(1, SESSION)), header]
        return full(1, P.Prefix(1, True, "198.18.0.0", 16, 24, 65001), version=1)

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("the second connection's data", lambda: tables.counts()["vrp"] == 1)
        (report,) = cache.errors()
        assert report.code == P.ErrorCode.CORRUPT_DATA and report.pdu == header and report.version == 1
        assert cache.connections == 2 and manager.sessions[0].state is CacheState.IN_SYNC
        assert died(manager) == []

    with caplog.at_level(logging.INFO, logger="rpki.rtr"):
        run_case(script, check, max_version=1)
    assert any("rtr.error_sent" in r.getMessage() and "Prefix PDU length 8" in r.getMessage()
               for r in caplog.records)


def test_mock_early_v0_serial_notify_does_not_downgrade_a_v2_session() -> None:
    """StayRTR 0.5.1 sends a version-0 Serial Notify to a client whose query it has not read yet. The
    client took its version: the v2 response was then refused, and the session came back as v0."""
    def script(conn: int, query: P.Pdu) -> list[bytes]:
        if not isinstance(query, P.ResetQuery):
            return []
        if query.version != 2:
            return [P.encode(P.ErrorReport(query.version, 4, P.encode(query), "v2 only")), b"CLOSE"]
        return [P.encode(P.SerialNotify(0, SESSION, 1)), *full(1, V4_A, ASPA_A)]

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("the v2 data", lambda: tables.counts()["aspa"] == 1 or tables.counts())
        assert manager.sessions[0].version == 2 and manager.sessions[0].state is CacheState.IN_SYNC
        assert cache.connections == 1 and cache.errors() == []
        assert cache.received == [P.ResetQuery(2)]

    run_case(script, check, refresh_s=3600)


def test_mock_backoff_doubles_up_to_the_retry_interval() -> None:
    """A cache that sends a bad PDU on every connection is retried after 0.05, 0.1, 0.2, then 0.4 s
    (the retry interval caps it); before issue 12 every retry waited the full retry interval."""
    def script(conn: int, query: P.Pdu) -> list[bytes]:
        return [bytes.fromhex("022a000000000008")]  # unknown PDU type: Error Report, reconnect

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("six connections", lambda: cache.connections >= 6 or cache.connections, timeout_s=10)
        t = cache.connected_at
        gaps = [b - a for a, b in itertools.pairwise(t)][:5]
        assert gaps[0] < 0.3, gaps  # 0.05 s plus the time to send the Error Report and close
        assert all(g >= 0.39 for g in gaps[3:]), gaps  # capped at retry_s, never shorter
        assert gaps[0] < gaps[2] < gaps[4], gaps
        assert len(cache.errors()) >= 5 and died(manager) == []

    run_case(script, check, retry_s=0.4, backoff_first_s=0.05)


class BuggyConnector:
    """tcp_connect, but raising an exception no protocol rule foresees (a bug) on chosen calls."""

    def __init__(self, fail: Callable[[int], bool]) -> None:
        self.fail, self.calls = fail, 0

    async def __call__(self, host: str, port: int, timeout_s: float) -> tuple[
            asyncio.StreamReader, asyncio.StreamWriter]:
        self.calls += 1
        if self.fail(self.calls):
            raise RuntimeError(f"connector bug on call {self.calls}")
        return await tcp_connect(host, port, timeout_s)


def test_mock_dead_session_task_is_logged_alarmed_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    def script(conn: int, query: P.Pdu) -> list[bytes]:
        return full(1, V4_A)

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("data after the restart", lambda: tables.counts()["vrp"] == 1, timeout_s=5)
        name = manager.sessions[0].name
        (alarm,) = [e for e in manager.events if e.alarm and e.fields.get("detail") == "task-died"]
        assert alarm.fields["alarm_id"] == f"rtr-task-died/{name}" and name in alarm.message
        assert alarm.fields["error"] == "RuntimeError: connector bug on call 1"
        cleared = [e for e in manager.events if e.fields.get("alarm_id") == f"rtr-task-died/{name}"
                   and e.fields.get("up") == "true"]
        assert len(cleared) == 1 and not cleared[0].alarm
        assert manager.sessions[0].state is CacheState.IN_SYNC

    with caplog.at_level(logging.INFO, logger="rpki.rtr"):
        run_case(script, check, connector=BuggyConnector(lambda call: call == 1))
    lines = [r.getMessage() for r in caplog.records if "event=rtr-session-died" in r.getMessage()]
    assert len(lines) == 1 and "peer=127.0.0.1:" in lines[0] and "connector bug" in lines[0]


def test_mock_data_of_a_dying_session_still_expires() -> None:
    """After one sync every reconnect dies (a bug): the expiry watchdog, a task of its own, still
    withdraws the data at `expire_s` and raises the stale alarm (fail open). Before issue 12 it died with
    the session and the VRPs stayed for ever."""
    def script(conn: int, query: P.Pdu) -> list[bytes]:
        return [*full(1, V4_A), b"CLOSE"]

    async def check(cache: FakeCache, manager: RtrManager, tables: RpkiTables) -> None:
        await until("the first sync", lambda: manager.sessions[0].has_data, timeout_s=5)
        await until("expiry", lambda: tables.counts()["vrp"] == 0, timeout_s=5)
        name = manager.sessions[0].name
        alarms = {e.fields["alarm_id"] for e in manager.events if e.alarm}
        assert {f"rpki-stale/rtr:{name}", f"rtr-task-died/{name}"} <= alarms
        assert manager.sessions[0].state is CacheState.EXPIRED and len(died(manager)) >= 1

    run_case(script, check, connector=BuggyConnector(lambda call: call > 1), expire_s=1.5, refresh_s=3600)
