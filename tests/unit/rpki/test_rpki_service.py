"""RPKI service wiring: config -> client configs, table deltas -> state-store facts."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from appliance.config import RpkiConfig, RpkiFileConfig, RtrCacheConfig
from appliance.model import Aspa, Vrp
from appliance.sources.rpki.component import delta_to_changes, feed_store
from appliance.state.store import StateStore
from rpki.keys import vrp_key
from rpki.service import RpkiService, cache_configs
from rpki.tables import RpkiTables


def test_cache_configs_carry_name_preference_and_version() -> None:
    config = RpkiConfig(caches=(RtrCacheConfig("a", "127.0.0.1", 8282, 2, 1),
                                RtrCacheConfig("b", "::1", 323, 1, 2)))
    a, b = cache_configs(config)
    assert (a.label, a.host, a.port, a.preference, a.max_version) == ("a", "127.0.0.1", 8282, 2, 1)
    assert (b.label, b.preference, b.max_version) == ("b", 1, 2)


def test_deltas_become_withdraw_then_announce_with_old_aspa_values() -> None:
    tables = RpkiTables()
    v1, v2 = Vrp("198.18.0.0/16", 24, 65001), Vrp("198.19.0.0/16", 16, 65002)
    tables.set_source("s", frozenset({vrp_key(v1)}), {65001: (65010,)})
    delta = tables.set_source("s", frozenset({vrp_key(v2)}), {65001: (65010, 65020)})
    withdraw, announce = delta_to_changes(delta)
    assert set(withdraw.facts) == {v1, Aspa(65001, (65010,))}
    assert set(announce.facts) == {v2, Aspa(65001, (65010, 65020))}


def test_service_feeds_files_into_the_state_store(tmp_path: Path) -> None:
    path = tmp_path / "rp.json"
    path.write_text(json.dumps({"roas": [{"asn": 65001, "prefix": "198.18.0.0/16", "maxLength": 24}],
                                "aspas": [{"customer_asid": 65001, "providers": [65010]}]}))
    store = StateStore()

    async def main() -> None:
        service = RpkiService(RpkiConfig(files=(RpkiFileConfig(path, reload_s=0.05),)))
        feed_store(service.tables, store)
        await service.start()
        try:
            assert set(store.facts("vrp")) == {Vrp("198.18.0.0/16", 24, 65001)}
            assert set(store.facts("aspa")) == {Aspa(65001, (65010,))}
            changed = {"roas": [], "aspas": [{"customer_asid": 65001, "providers": [65020]}]}
            path.write_text(json.dumps(changed))
            os.utime(path, (1, 1))
            for _ in range(100):
                if not store.facts("vrp"):
                    break
                await asyncio.sleep(0.02)
            assert store.facts("vrp") == [] and set(store.facts("aspa")) == {Aspa(65001, (65020,))}
            (status,) = service.file_status()
            assert status["path"] == str(path) and status["aspas"] == 1 and status["last_update"]
            assert service.cache_status() == []
        finally:
            await service.stop()

    asyncio.run(main())


def test_alarm_ending_events_go_to_on_clear() -> None:
    from appliance.model import Event, Severity

    published: list[Event] = []
    cleared: list[tuple[str, str, str]] = []
    config = RpkiConfig(caches=(RtrCacheConfig("a", "127.0.0.1", 1),))
    service = RpkiService(config, on_event=published.append,
                          on_clear=lambda *a: cleared.append(a))
    down = Event(0, "rtr:a", "rtr-session", Severity.ERROR, "down", {"alarm_id": "rtr-session/a"}, True)
    up = Event(0, "rtr:a", "rtr-session", Severity.INFO, "up", {"alarm_id": "rtr-session/a", "up": "true"})
    assert service.manager is not None and service.manager.on_event is not None
    route = service.manager.on_event  # what the sessions and the manager report through
    route(down)
    route(up)
    assert published == [down] and cleared == [("rtr-session/a", "rtr:a", "up")]


class _ConnectorBugThenGoodCache:
    """A connector whose first call raises (a bug no protocol rule foresees), then a cache in memory that
    answers the first query with a full sync of one VRP, in the query's version (v1 or v2)."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, host: str, port: int, timeout_s: float) -> tuple[object, object]:
        from rpki.rtr import pdu as P

        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("connector bug")
        reader = asyncio.StreamReader()

        def sync(v: int) -> list[P.Pdu]:
            return [P.CacheResponse(v, 9), P.Prefix(v, True, "198.18.0.0", 16, 24, 65001),
                    P.EndOfData(v, 9, 1, 3600, 600, 7200)]

        class Writer:
            answered = False

            def write(self, data: bytes) -> None:
                if not self.answered:  # the first query: a full sync; later writes go unanswered
                    self.answered = True
                    reader.feed_data(b"".join(P.encode(p) for p in sync(data[0])))

            async def drain(self) -> None:
                return None

            def close(self) -> None:
                return None

            async def wait_closed(self) -> None:
                return None

        return reader, Writer()


def test_dead_session_task_is_a_monitor_alarm_until_the_restarted_session_syncs() -> None:
    """Issue 12: the session task dying is an alarm in the daemon's Monitor naming the cache; the
    supervisor restarts it, and its End of Data clears the alarm."""
    from appliance.monitor.monitor import Monitor

    monitor = Monitor()
    config = RpkiConfig(caches=(RtrCacheConfig("cache-a", "127.0.0.1", 323),))
    service = RpkiService(config, on_event=monitor.publish, on_clear=monitor.clear)
    assert service.manager is not None
    service.manager.restart_first_s = 0.01
    service.manager.sessions[0].connector = _ConnectorBugThenGoodCache()  # type: ignore[assignment]
    seen: list[set[str]] = []

    async def main() -> None:
        await service.start()
        try:
            for _ in range(200):
                seen.append({a.id for a in monitor.alarms.active()})
                if service.tables.counts()["vrp"] == 1:
                    break
                await asyncio.sleep(0.01)
        finally:
            await service.stop()

    asyncio.run(main())
    assert any("rtr-task-died/cache-a" in ids for ids in seen)
    assert service.tables.counts()["vrp"] == 1
    active = {a.id for a in monitor.alarms.active()}
    assert "rtr-task-died/cache-a" not in active and "rtr-session/cache-a" not in active
