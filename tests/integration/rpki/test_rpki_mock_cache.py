"""The RTR session against a tiny scripted fake cache on loopback (mock: StayRTR cannot send bad PDUs).

Each case scripts what the cache answers to each query and asserts what the client sent back (Error
Reports with the right code and the offending PDU) and what reached the tables (nothing half-applied).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from support import waiting

from rpki.rtr import pdu as P
from rpki.rtr.manager import RtrManager
from rpki.rtr.session import CacheConfig, CacheState
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


def run_case(script: Script, check: Check, **cfg: float) -> None:
    async def main() -> None:
        cache = FakeCache(script)
        port = await cache.start()
        tables = RpkiTables()
        options = {"retry_s": 0.1, **cfg}
        manager = RtrManager([CacheConfig("127.0.0.1", port, **options)], tables)  # type: ignore[arg-type]
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
