"""Monitor: typed notices become events with common metadata, alarms raise and clear, exporters agree."""

from __future__ import annotations

import logging

import pytest

from appliance.model import Event, Severity
from appliance.monitor import EventBus, ManualClock, Monitor
from appliance.monitor.counters import CounterBoard, CounterSample
from appliance.monitor.events import (
    BgpSession,
    EventType,
    GuardrailRefused,
    PushResult,
    RpkiFreshness,
    RtrSession,
    SpoofingSeen,
)
from appliance.monitor.logfmt import LogSink, format_record
from appliance.monitor.metrics import Metrics


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def monitor(clock: ManualClock) -> Monitor:
    return Monitor(clock, EventBus(capacity=5))


def test_notice_becomes_event_with_common_metadata(monitor: Monitor) -> None:
    record = monitor.emit(BgpSession("exa1", "198.18.0.2", "r1", up=False, reason="hold timer expired"))
    e = record.event
    assert (record.seq, e.time, e.source, e.type, e.severity, e.alarm) == (
        1, 1000.0, "speaker:exa1", "bgp.session-down", Severity.ERROR, True)
    assert e.message == "BGP session to r1 (198.18.0.2) down: hold timer expired"
    assert e.fields == {"speaker": "exa1", "peer": "198.18.0.2", "router": "r1", "up": "false",
                        "reason": "hold timer expired", "alarm_id": "bgp-session/exa1/198.18.0.2"}


def test_alarm_raise_refresh_clear(monitor: Monitor, clock: ManualClock) -> None:
    down = RtrSession("stayrtr", up=False, reason="connection refused")
    monitor.emit(down)
    clock.advance(5)
    monitor.emit(down)
    (alarm,) = monitor.alarms.active()
    assert (alarm.id, alarm.count) == ("rtr-session/stayrtr", 2)
    assert (alarm.raised_at, alarm.last_at) == (1000.0, 1005.0)
    record = monitor.emit(RtrSession("stayrtr", up=True))
    assert monitor.alarms.active() == []
    assert record.event.alarm is False and record.event.severity is Severity.INFO


def test_rpki_expired_has_its_own_type_and_clears_with_fresh_data(monitor: Monitor) -> None:
    e = monitor.emit(RpkiFreshness("stayrtr", 8000.0, stale=True, expired=True)).event
    assert (e.type, e.severity) == ("rpki-expired", Severity.CRITICAL)
    assert [a.id for a in monitor.alarms.active()] == ["rpki-stale/stayrtr"]
    monitor.emit(RpkiFreshness("stayrtr", 1.0, stale=False))
    assert monitor.alarms.active() == []


def test_ready_events_from_other_modules_raise_alarms(monitor: Monitor) -> None:
    event = Event(1.0, "flowspec", "guardrail", Severity.ERROR, "too many rules", {"router": "r1"},
                  alarm=True)
    monitor.publish(event)
    (alarm,) = monitor.alarms.active()
    assert alarm.id == "guardrail/router=r1" and alarm.source == "flowspec"
    cleared = monitor.clear(alarm.id, "flowspec", "rules accepted again")
    assert cleared is not None and cleared.event.fields["cleared"] == "true"
    assert monitor.clear(alarm.id, "flowspec", "again") is None
    assert monitor.alarms.active() == []


def test_bus_is_a_bounded_ring_with_filters(monitor: Monitor) -> None:
    for i in range(7):
        monitor.emit(PushResult(f"198.18.0.{i}", "r1", ok=i % 2 == 0, reason="timeout"))
    bus = monitor.bus
    assert [r.seq for r in bus.recent()] == [3, 4, 5, 6, 7]
    assert bus.dropped == 2 and bus.last_seq == 7
    assert [r.seq for r in bus.recent(since=5)] == [6, 7]
    assert [r.seq for r in bus.recent(alarms_only=True)] == [4, 6]
    assert [r.seq for r in bus.recent(min_severity=Severity.ERROR)] == [4, 6]
    assert [r.seq for r in bus.recent(limit=2)] == [6, 7]
    assert bus.recent(types=["spoofing-seen"]) == []


def test_faulty_subscriber_does_not_stop_others(monitor: Monitor) -> None:
    seen: list[int] = []

    def broken(_: object) -> None:
        raise RuntimeError("boom")

    monitor.bus.subscribe(broken)
    unsubscribe = monitor.bus.subscribe(lambda r: seen.append(r.seq))
    monitor.emit(RtrSession("c", up=True))
    unsubscribe()
    monitor.emit(RtrSession("c", up=True))
    assert seen == [1]


def test_log_lines_are_key_value(monitor: Monitor, caplog: pytest.LogCaptureFixture) -> None:
    monitor.bus.subscribe(LogSink())
    with caplog.at_level(logging.INFO, logger="savd.events"):
        record = monitor.emit(GuardrailRefused("r1", "max-rules", "2500 rules > 2000"))
    line = format_record(record)
    assert line == (
        'time=1970-01-01T00:16:40.000Z type=flowspec.refused severity=error category=nsf-event '
        'source=flowspec router=r1 alarm=true seq=1 '
        'alarm_id=guardrail-refused/r1/max-rules detail="2500 rules > 2000" guardrail=max-rules '
        'refused=true msg="guardrail max-rules refused the rules for r1: 2500 rules > 2000"'
    )
    assert caplog.records[0].levelno == logging.ERROR and caplog.records[0].getMessage() == line


def sample(packets: int, spoofed: bool = True, prefix: str = "198.18.7.0/24") -> CounterSample:
    return CounterSample("r1", "eth1", prefix, "drop", packets, packets * 100, spoofed)


def test_spoofing_seen_when_drop_counters_rise_and_cleared_when_quiet() -> None:
    board = CounterBoard(quiet_s=30)
    assert board.update([sample(10)], now=0) == []  # baseline
    assert board.update([sample(10)], now=10) == []
    (seen,) = board.update([sample(25)], now=20)
    assert seen == SpoofingSeen("r1", "eth1", "198.18.7.0/24", 15, 1500)
    assert board.update([sample(25)], now=40) == []
    (quiet,) = board.tick(now=50)
    assert quiet.active is False and quiet.alarm_id == seen.alarm_id
    assert board.tick(now=100) == []


def test_a_rule_installed_after_its_router_was_first_polled_counts_from_zero() -> None:
    """Only a router's first poll is a baseline (savd may have restarted under a counting enforcer); a
    rule that appears later (pushed after the first poll, hit before the next) has dropped only spoofed
    traffic since it was installed, and that is seen, traced and counted."""
    board = CounterBoard()
    assert board.update([], now=0, polled=["r1"]) == []          # r1's enforcer has no rule yet
    (seen,) = board.update([sample(13)], now=5, polled=["r1"])
    assert (seen.source_prefix, seen.packets) == ("198.18.7.0/24", 13)
    assert board.totals()[("r1", "eth1", "198.18.7.0/24")] == (13, 1300, True)
    fresh = CounterBoard()
    assert fresh.update([sample(13)], now=0, polled=["r1"]) == []  # a first poll: a baseline


def test_counter_reset_counts_the_new_value_and_legit_counters_never_alarm() -> None:
    board = CounterBoard()
    board.update([sample(100), sample(5, spoofed=False, prefix="198.18.1.0/24")], now=0)
    notices = board.update([sample(3), sample(50, spoofed=False, prefix="198.18.1.0/24")], now=1)
    assert [(n.source_prefix, n.packets) for n in notices] == [("198.18.7.0/24", 3)]
    assert board.totals()[("r1", "eth1", "198.18.7.0/24")] == (103, 10300, True)
    assert board.totals()[("r1", "eth1", "198.18.1.0/24")] == (50, 5000, False)


def test_metrics_expose_events_alarms_counters_and_gauges(monitor: Monitor) -> None:
    board = CounterBoard()
    metrics = Metrics(monitor, board)
    metrics.add_gauge("savd_state_version", "Snapshot version", (), lambda: {(): 7.0})
    monitor.emit(BgpSession("exa1", "198.18.0.2", "r1", up=False))
    monitor.emit(BgpSession("exa1", "198.18.0.3", "r2", up=True))
    board.update([sample(1)], now=0)
    for notice in board.update([sample(4)], now=1):
        monitor.emit(notice)
    text = metrics.render().decode()
    assert 'savd_events_total{category="system-alarm",severity="error",type="bgp.session-down"} 1.0' in text
    assert 'savd_events_total{category="nsf-event",severity="warning",type="spoofing-seen"} 1.0' in text
    assert 'savd_alarms_active{category="system-alarm",severity="error",type="bgp.session-down"} 1.0' in text
    assert 'savd_alarms_active{category="nsf-event",severity="warning",type="spoofing-seen"} 1.0' in text
    assert ('savd_enforcer_packets_total{action="drop",category="nsf-counter",interface="eth1",'
            'prefix="198.18.7.0/24",router="r1",source="enforcer:r1",source_prefix="198.18.7.0/24",'
            'spoofed="true"} 4.0') in text
    assert "savd_state_version 7.0" in text
    assert EventType.SPOOFING_SEEN == "spoofing-seen"


def test_rpki_freshness_transitions_raise_and_clear(monitor: Monitor) -> None:
    from appliance.monitor.freshness import FreshnessWatch

    watch = FreshnessWatch(stale_after_s=100, expire_after_s=300)
    assert watch.check({"rtr:a": 1000.0, "rtr:b": None}, now=1050) == []
    (stale,) = watch.check({"rtr:a": 1000.0}, now=1100)
    assert (stale.stale, stale.expired, stale.age_s) == (True, False, 100.0)
    assert watch.check({"rtr:a": 1000.0}, now=1200) == []
    (expired,) = watch.check({"rtr:a": 1000.0}, now=1300)
    assert expired.expired and expired.event_type == "rpki-expired"
    for notice in (stale, expired):
        monitor.emit(notice)
    assert [a.id for a in monitor.alarms.active()] == ["rpki-stale/rtr:a"]
    (fresh,) = watch.check({"rtr:a": 1290.0}, now=1300)
    monitor.emit(fresh)
    assert not fresh.stale and monitor.alarms.active() == []
    watch.check({"rtr:a": 1000.0}, now=1200)
    (gone,) = watch.check({}, now=1200)
    assert gone.rpki_source == "rtr:a" and not gone.raises


def test_reconcile_raises_new_clears_vanished_without_repeats(monitor: Monitor, clock: ManualClock) -> None:
    too_many = Event(0.0, "flowspec", "flowspec.too-many-rules", Severity.ERROR, "r1: 2500 > 2000",
                     {"router": "r1"}, alarm=True)
    forced = Event(0.0, "flowspec", "flowspec.forced", Severity.WARNING, "forced", {"router": "r2"})
    first = monitor.reconcile("flowspec", [too_many, forced])
    assert [(r.event.type, r.event.time) for r in first] == [
        ("flowspec.too-many-rules", 1000.0), ("flowspec.forced", 1000.0)]
    assert [a.id for a in monitor.alarms.active()] == ["flowspec.too-many-rules/router=r1"]
    clock.advance(10)
    assert monitor.reconcile("flowspec", [too_many]) == []  # still raised: refreshed, not repeated
    assert monitor.alarms.get("flowspec.too-many-rules/router=r1").count == 2  # type: ignore[union-attr]
    (cleared,) = monitor.reconcile("flowspec", [])
    assert cleared.event.fields["cleared"] == "true" and cleared.event.severity is Severity.INFO
    assert monitor.alarms.active() == []
