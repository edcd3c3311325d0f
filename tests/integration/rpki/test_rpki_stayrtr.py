"""The RTR client against a real StayRTR 0.5.1 on loopback (and rtrlib against the same cache)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import waiting

from appliance.model import Aspa, Vrp
from rpki import rtrlib
from rpki.keys import keys_to_vrps
from rpki.localcache import LocalStayRtr, write_stayrtr_json
from rpki.rtr import pdu as P
from rpki.rtr.manager import RtrManager
from rpki.rtr.session import CacheConfig, CacheState
from rpki.rtr.transport import tcp_connect
from rpki.tables import RpkiDelta, RpkiTables

pytestmark = pytest.mark.integration

VRPS = [
    Vrp("198.18.0.0/16", 24, 65001),
    Vrp("198.19.128.0/17", 20, 4200000001),
    Vrp("2001:db8::/32", 48, 65002),
    Vrp("2001:db8:100::/40", 40, 0),
]
ASPAS = [Aspa(65001, (65010, 65020)), Aspa(65002, (65010,))]


def wait_for(what: str, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll to a deadline; the failure names what was awaited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def until(what: str, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    await waiting.until(predicate, what, timeout_s, interval_s=0.05)


@pytest.fixture
def cache_file(tmp_path: Path) -> Path:
    path = tmp_path / "vrps.json"
    write_stayrtr_json(path, VRPS, ASPAS)
    return path


@pytest.fixture
def stayrtr(cache_file: Path) -> Iterator[LocalStayRtr]:
    with LocalStayRtr(cache_file, refresh_s=1) as cache:
        yield cache


def test_full_sync_v2_with_legacy_aspa_layout(stayrtr: LocalStayRtr) -> None:
    async def main() -> None:
        tables = RpkiTables()
        manager = RtrManager([CacheConfig("127.0.0.1", stayrtr.port)], tables)
        await manager.start()
        try:
            assert await manager.wait_synced(10)
            snap = tables.snapshot()
            assert set(snap.vrps) == set(VRPS)
            assert snap.aspas == tuple(ASPAS)
            (status,) = manager.status()
            assert status.state is CacheState.IN_SYNC and status.version == 2 and status.active
            assert (status.refresh_s, status.retry_s, status.expire_s) == (3600, 600, 7200)
        finally:
            await manager.stop()

    asyncio.run(main())


def test_incremental_update_via_serial_notify(stayrtr: LocalStayRtr, cache_file: Path) -> None:
    """Client refresh is 3600 s, so only StayRTR's Serial Notify can bring the change in time."""
    async def main() -> None:
        tables = RpkiTables()
        deltas: list[RpkiDelta] = []
        tables.subscribe(deltas.append)
        manager = RtrManager([CacheConfig("127.0.0.1", stayrtr.port, refresh_s=3600)], tables)
        await manager.start()
        try:
            assert await manager.wait_synced(10)
            first_serial = manager.sessions[0].serial
            new_vrp = Vrp("198.18.64.0/18", 18, 65003)
            write_stayrtr_json(cache_file, [*VRPS[1:], new_vrp], [ASPAS[0]])
            await until("the incremental update", lambda: new_vrp in tables.snapshot().vrps)
            snap = tables.snapshot()
            assert set(snap.vrps) == {*VRPS[1:], new_vrp}
            assert snap.aspas == (ASPAS[0],)
            assert manager.sessions[0].serial != first_serial
            change = [d for d in deltas if d.announced_keys and len(d.announced_keys) == 1]
            assert change and change[0].announced() == (new_vrp,) and change[0].withdrawn() == (VRPS[0],)
        finally:
            await manager.stop()

    asyncio.run(main())


def test_cache_restart_mid_session_resyncs(stayrtr: LocalStayRtr, cache_file: Path) -> None:
    """StayRTR 0.5.1 may reuse its session id after a restart, so the client resyncs with a Reset Query."""
    async def main() -> None:
        tables = RpkiTables()
        manager = RtrManager([CacheConfig("127.0.0.1", stayrtr.port, retry_s=0.2, refresh_s=0.5)], tables)
        await manager.start()
        try:
            assert await manager.wait_synced(10)
            extra = Vrp("198.18.200.0/24", 24, 65004)
            write_stayrtr_json(cache_file, [*VRPS, extra], ASPAS)
            await asyncio.to_thread(stayrtr.restart)
            await until("data of the restarted cache", lambda: extra in tables.snapshot().vrps)
            session = manager.sessions[0]
            assert set(tables.snapshot().vrps) == {*VRPS, extra}
            assert session.state is CacheState.IN_SYNC
        finally:
            await manager.stop()

    asyncio.run(main())


def test_cache_reset_for_an_unknown_serial(stayrtr: LocalStayRtr) -> None:
    """StayRTR answers a Serial Query for a serial it never had with Cache Reset; we resync in place."""
    async def main() -> None:
        tables = RpkiTables()
        deltas: list[RpkiDelta] = []
        tables.subscribe(deltas.append)
        manager = RtrManager([CacheConfig("127.0.0.1", stayrtr.port, refresh_s=0.3)], tables)
        await manager.start()
        try:
            assert await manager.wait_synced(10)
            session = manager.sessions[0]
            real_serial = session.serial
            session.serial = 0xFFFF0000  # as if the cache had lost its history
            await until("a Cache Reset", lambda: session.cache_resets > 0)
            await until("the reset sync", lambda: session.serial != 0xFFFF0000)
            assert session.serial is not None and session.serial >= (real_serial or 0)
            assert set(tables.snapshot().vrps) == set(VRPS) and len(deltas) == 1  # no spurious delta
            assert session.state is CacheState.IN_SYNC
        finally:
            await manager.stop()

    asyncio.run(main())


def test_cache_gone_past_expire_withdraws_and_alarms(stayrtr: LocalStayRtr) -> None:
    async def main() -> None:
        tables = RpkiTables()
        manager = RtrManager(
            [CacheConfig("127.0.0.1", stayrtr.port, refresh_s=0.3, retry_s=0.3, expire_s=1.5)], tables
        )
        await manager.start()
        try:
            assert await manager.wait_synced(10)
            assert len(tables.snapshot().vrps) == len(VRPS)
            await asyncio.to_thread(stayrtr.stop)
            await until("expiry", lambda: tables.counts()["vrp"] == 0, timeout_s=6)
            assert tables.snapshot().aspas == ()
            assert manager.sessions[0].state is CacheState.EXPIRED
            alarms = {e.fields["alarm_id"]: e for e in manager.events if e.alarm}
            name = manager.sessions[0].name
            assert alarms[f"rpki-stale/rtr:{name}"].type == "rpki-expired"
            assert alarms["rpki-stale/rtr"].type == "rpki-expired"  # no cache left at all
            assert alarms[f"rtr-session/{name}"].type == "rtr-session"  # the session went down first
            await asyncio.to_thread(stayrtr.start)
            await until("data back", lambda: tables.counts()["vrp"] == len(VRPS), timeout_s=6)
            cleared = {e.fields["alarm_id"] for e in manager.events if e.fields.get("up") == "true"}
            assert {"rpki-stale/rtr", f"rtr-session/{name}"} <= cleared
        finally:
            await manager.stop()

    asyncio.run(main())


def test_failover_to_the_next_preferred_cache(tmp_path: Path) -> None:
    primary_file, backup_file = tmp_path / "a.json", tmp_path / "b.json"
    write_stayrtr_json(primary_file, VRPS[:2])
    write_stayrtr_json(backup_file, VRPS[2:])
    with LocalStayRtr(primary_file) as primary, LocalStayRtr(backup_file) as backup:
        async def main() -> None:
            tables = RpkiTables()
            caches = [
                CacheConfig("127.0.0.1", backup.port, preference=2, expire_s=1.0, retry_s=0.2,
                            refresh_s=0.3),
                CacheConfig("127.0.0.1", primary.port, preference=1, expire_s=1.0, retry_s=0.2,
                            refresh_s=0.3),
            ]
            manager = RtrManager(caches, tables)
            await manager.start()
            try:
                await until("both caches in sync", lambda: all(s.has_data for s in manager.sessions))
                assert set(tables.snapshot().vrps) == set(VRPS[:2])
                await asyncio.to_thread(primary.stop)
                await until("failover", lambda: set(tables.snapshot().vrps) == set(VRPS[2:]), 6)
                assert manager.active is manager.sessions[0]
            finally:
                await manager.stop()

        asyncio.run(main())


@pytest.mark.parametrize("protocol", [0, 1])
def test_older_cache_versions_negotiate_down(cache_file: Path, protocol: int) -> None:
    """StayRTR -protocol N answers our v2 Reset Query at version N; v0/v1 carry no ASPA."""
    with LocalStayRtr(cache_file, protocol=protocol) as cache:
        async def main() -> None:
            tables = RpkiTables()
            manager = RtrManager([CacheConfig("127.0.0.1", cache.port)], tables)
            await manager.start()
            try:
                assert await manager.wait_synced(10)
                assert manager.sessions[0].version == protocol
                assert set(tables.snapshot().vrps) == set(VRPS)
                assert tables.snapshot().aspas == ()
            finally:
                await manager.stop()

        asyncio.run(main())


class NotifyFirst:
    """tcp_connect that hands the streams to the session only once the cache's first bytes are in, so
    StayRTR's early Serial Notify is read before the answer to the session's Reset Query: the race of
    containerlab/sav-inter (StayRTR with ASPAs notifies every -refresh second), made certain."""

    def __init__(self) -> None:
        self.early: list[P.Pdu] = []
        self.pumps: list[asyncio.Task[None]] = []

    async def __call__(self, host: str, port: int, timeout_s: float) -> tuple[
            asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await tcp_connect(host, port, timeout_s)
        first = await asyncio.wait_for(reader.readexactly(12), 5)
        self.early.append(P.decode(first))
        relay = asyncio.StreamReader()
        relay.feed_data(first)

        async def pump() -> None:
            while chunk := await reader.read(1 << 16):
                relay.feed_data(chunk)
            relay.feed_eof()

        self.pumps.append(asyncio.create_task(pump()))
        return relay, writer


def test_early_serial_notify_keeps_v2_with_notifications_on(stayrtr: LocalStayRtr) -> None:
    """StayRTR 0.5.1 (notifications on, ASPAs, -refresh 1) sends a version-0 Serial Notify to a client
    that has not queried yet. Read before the v2 response, it made the client fail the session and come
    back as v0; now it is skipped and the session is v2, with ASPAs, and no Error Report."""
    async def main() -> None:
        tables = RpkiTables()
        connector = NotifyFirst()
        manager = RtrManager([CacheConfig("127.0.0.1", stayrtr.port, refresh_s=3600)], tables,
                             connector=connector)
        await manager.start()
        try:
            assert await manager.wait_synced(10)
            (early,) = connector.early
            assert isinstance(early, P.SerialNotify) and early.version == 0  # the race really happened
            (status,) = manager.status()
            assert status.state is CacheState.IN_SYNC and status.version == 2
            assert set(tables.snapshot().vrps) == set(VRPS) and tables.snapshot().aspas == tuple(ASPAS)
            await asyncio.sleep(2.5)  # two more notifies (StayRTR's ASPA serial bump): Serial Queries
            (status,) = manager.status()
            assert status.state is CacheState.IN_SYNC and status.version == 2
            assert status.serial is not None and status.serial > early.serial
            sent = [e for e in manager.events if e.fields.get("detail") == "error-report-sent"]
            assert sent == [] and len(connector.early) == 1  # one connection all along
        finally:
            await manager.stop()
            for pump in connector.pumps:
                pump.cancel()

    asyncio.run(main())


@pytest.fixture
def built_rtrlib() -> None:
    """scripts/setup builds the binding; its absence is a failure, not a skip."""
    if not rtrlib.available():
        pytest.fail("rpki._rtrlib_cffi not built: run scripts/build.d/20-rtrlib.sh (make test does)")


def test_both_backends_yield_identical_vrps(
    built_rtrlib: None, stayrtr: LocalStayRtr, shared_data: Path
) -> None:
    """Real VRPs (AFRINIC, 4,372) through StayRTR: the native client and rtrlib see the same set."""
    from rpki import files

    data = files.load(shared_data / "rpki/ripe-archive-afrinic/roas.afrinic.2021-12-31.csv")
    write_stayrtr_json(stayrtr.cache_file, keys_to_vrps(data.vrps), ASPAS)
    native = RpkiTables()

    async def main() -> None:
        manager = RtrManager([CacheConfig("127.0.0.1", stayrtr.port)], native)
        await manager.start()
        try:
            await until("the new file", lambda: native.counts()["vrp"] == len(data.vrps))
        finally:
            await manager.stop()

    asyncio.run(main())
    via_rtrlib = rtrlib.sync_once("127.0.0.1", stayrtr.port, timeout_s=20)
    assert len(via_rtrlib.vrps) == len(data.vrps)
    assert via_rtrlib.vrps == native.vrp_keys() == data.vrps


def test_rtrlib_source_feeds_tables_and_follows_updates(
    built_rtrlib: None, stayrtr: LocalStayRtr, cache_file: Path
) -> None:
    async def main() -> None:
        tables = RpkiTables()
        source = rtrlib.RtrlibSource("127.0.0.1", stayrtr.port, tables)
        await source.start()
        try:
            await asyncio.wait_for(source.synced.wait(), 10)
            assert set(tables.snapshot().vrps) == set(VRPS)
            assert source.status["sync_s"] > 0
            new_vrp = Vrp("198.18.64.0/18", 18, 65003)
            write_stayrtr_json(cache_file, [*VRPS[1:], new_vrp])
            await until("rtrlib's incremental update", lambda: new_vrp in tables.snapshot().vrps)
            assert set(tables.snapshot().vrps) == {*VRPS[1:], new_vrp}
        finally:
            await source.stop()
        assert tables.counts()["vrp"] == 0

    asyncio.run(main())


def test_savd_rpki_status_and_dump_cli(stayrtr: LocalStayRtr, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    extra = tmp_path / "extra.csv"
    extra.write_text("ASN,IP Prefix,Max Length\nAS65009,198.18.250.0/24,24\n")
    base = [sys.executable, "-m", "appliance.cli", "rpki"]
    where = ["--cache", f"127.0.0.1:{stayrtr.port}", "--file", str(extra), "--timeout", "10"]
    status = subprocess.run([*base, "status", "--json", *where], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    (cache,) = doc["caches"]
    assert cache["state"] == "in-sync" and cache["version"] == 2 and cache["vrps"] == len(VRPS)
    assert cache["aspas"] == len(ASPAS) and cache["session_id"] is not None and cache["active"]
    (file_status,) = doc["files"]
    assert doc["tables"]["vrp"] == len(VRPS) + 1
    assert file_status["path"] == str(extra) and file_status["vrps"] == 1 and file_status["error"] == ""
    dump = subprocess.run([*base, "dump", *where], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    lines = dump.stdout.splitlines()
    assert "198.18.250.0/24-24 AS65009" in lines and "ASPA AS65001 -> AS65010 AS65020" in lines
    down = subprocess.run([*base, "status", "--cache", "127.0.0.1:1", "--timeout", "1"],
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and "error-transport" in down.stdout
