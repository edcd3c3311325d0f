"""savd names a catch-all's actual sources (issue 14): the CounterBoard turns the enforcer's top
sources into the spoofing-seen event's fields and message, and traces record per actual source."""

from __future__ import annotations

from appliance.model import Event, Severity
from appliance.monitor.bus import Record
from appliance.monitor.counters import CounterBoard, CounterSample, source_rises
from appliance.monitor.events import SpoofingSeen
from appliance.monitor.traces import TraceBoard, parse_top_sources


def catch_all(packets: int, tops: tuple[tuple[str, int, int], ...]) -> CounterSample:
    return CounterSample("r1", "eth1", "0.0.0.0/0", "discard", packets, 84 * packets, top_sources=tops)


def test_rises_per_source_name_the_alarm_most_packets_first() -> None:
    board = CounterBoard()
    assert board.update([catch_all(2, (("198.18.7.0/24", 2, 168),))], 0.0) == []   # baseline
    notices = board.update([catch_all(20, (("198.18.7.0/24", 17, 1428), ("198.18.9.0/24", 3, 252)))], 5.0)
    assert notices == [SpoofingSeen("r1", "eth1", "0.0.0.0/0", 18, 1512,
                                    top_sources="198.18.7.0/24:15,198.18.9.0/24:3",
                                    top_source_bytes="198.18.7.0/24:1260,198.18.9.0/24:252")]
    seen = notices[0]
    assert seen.fields()["top_sources"] == "198.18.7.0/24:15,198.18.9.0/24:3"
    assert seen.message.endswith(
        "18 packets, 1512 bytes dropped (top sources 198.18.7.0/24:15,198.18.9.0/24:3)")
    assert seen.alarm_id == "spoofing-seen/r1/eth1/0.0.0.0/0"
    # a rule without top sources keeps its old message and empty fields
    plain = SpoofingSeen("r1", "eth1", "198.18.3.0/24", 10, 840)
    assert plain.message == "spoofed traffic on r1 eth1 from 198.18.3.0/24: 10 packets, 840 bytes dropped"
    assert board.rows()[0]["top_sources"][0] == {"source": "198.18.7.0/24", "packets": 17, "bytes": 1428}


def test_source_rises_handle_expiry_and_new_sources() -> None:
    old = (("198.18.7.0/24", 10, 840), ("2001:db8:7::/48", 5, 500))
    new = (("198.18.7.0/24", 4, 336), ("2001:db8:7::/48", 5, 500), ("198.18.9.0/24", 1, 84))
    assert source_rises(old, new) == [("198.18.7.0/24", 4, 336), ("198.18.9.0/24", 1, 84)]


def record(fields: dict[str, str], t: float = 100.0) -> Record:
    return Record(seq=1, event=Event(time=t, source="enforcer:r1", type="spoofing-seen",
                                     severity=Severity.WARNING, message="", fields=fields))


def test_traces_record_actual_sources_and_only_the_rest_under_the_catch_all() -> None:
    seen = SpoofingSeen("r1", "eth1", "0.0.0.0/0", 20, 1680, top_sources="198.18.7.0/24:15,198.18.9.0/24:3",
                        top_source_bytes="198.18.7.0/24:1260,198.18.9.0/24:252")
    board = TraceBoard()
    board.on_record(record(seen.fields()))
    [trace] = board.traces(now=110.0)
    assert (trace.packets, trace.bytes, trace.source_count) == (20, 1680, 3)
    assert [(s.prefix, s.packets, s.bytes) for s in trace.sources] == [
        ("198.18.7.0/24", 15, 1260), ("198.18.9.0/24", 3, 252), ("0.0.0.0/0", 2, 168)]
    v6 = SpoofingSeen("r1", "eth1", "::/0", 4, 400, top_sources="2001:db8:7::/48:4",
                      top_source_bytes="2001:db8:7::/48:400")
    board.on_record(record(v6.fields()))
    sources = [(s.prefix, s.packets, s.bytes) for s in board.traces(110.0)[0].sources]
    assert ("2001:db8:7::/48", 4, 400) in sources and "::/0" not in [p for p, _, _ in sources]


def test_parse_top_sources_tolerates_garbage_and_ipv6_colons() -> None:
    assert parse_top_sources("2001:db8::/48:7,bad,198.18.1.0/24:x,:3", "2001:db8::/48:700") == [
        ("2001:db8::/48", 7, 700)]
    assert parse_top_sources("") == []


def test_a_quiet_poll_changes_nothing_and_the_next_rise_counts_from_the_last_reading() -> None:
    """Most of a big router's samples repeat the last poll's counts (the board's fast path): such a poll
    raises nothing and moves no total, the alarm clears after quiet_s, and a later rise is measured from
    the repeated reading."""
    board = CounterBoard(quiet_s=10.0)
    tops = (("198.18.7.0/24", 2, 168),)
    board.update([catch_all(2, tops)], 0.0)
    assert len(board.update([catch_all(5, (("198.18.7.0/24", 5, 420),))], 5.0)) == 1
    assert board.update([catch_all(5, (("198.18.7.0/24", 5, 420),))], 10.0) == []
    cleared = board.update([catch_all(5, (("198.18.7.0/24", 5, 420),))], 15.0)
    assert [n.active for n in cleared] == [False]
    again = board.update([catch_all(9, (("198.18.7.0/24", 9, 756),))], 20.0)
    assert [(n.packets, n.top_sources) for n in again] == [(4, "198.18.7.0/24:4")]
    assert board.rows()[0]["packets"] == 9
