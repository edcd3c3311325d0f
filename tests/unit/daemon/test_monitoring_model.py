"""The monitoring model of seeds/002: every event, alarm, log line, syslog message, counter and metric
carries the same common metadata (time, source, severity, category, router/interface/prefix), computed in
one place (appliance/monitor/metadata.py), so no exporter can disagree with another."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.config import ApiConfig, ConfigError, parse_config
from appliance.enforcer.poller import samples_from
from appliance.model import Event, Severity
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.bus import Record
from appliance.monitor.counters import CounterBoard
from appliance.monitor.events import (
    BgpSession,
    EnforcerReachable,
    EnforcerSessionDown,
    EventType,
    GuardrailRefused,
    JournalWrite,
    Notice,
    Operational,
    PrefixConflict,
    PushResult,
    RpkiFreshness,
    RtrSession,
    RuleInstalled,
    SpoofingSeen,
)
from appliance.monitor.logfmt import format_record
from appliance.monitor.metadata import Category, category_of, rfc3339
from appliance.monitor.metrics import Metrics
from appliance.monitor.syslog import SD_FIELDS, SD_META, SyslogSink, SyslogTarget, format_rfc5424
from appliance.state import StateStore

T0 = 1_700_000_000.25

#: one notice of every typed kind, and what it concerns
NOTICES: list[tuple[Notice, Category, tuple[str, str, str]]] = [
    (BgpSession("exa1", "198.18.0.2", "r1", up=False), Category.SYSTEM_ALARM, ("r1", "", "")),
    (RtrSession("stayrtr", up=False), Category.SYSTEM_ALARM, ("", "", "")),
    (RpkiFreshness("rtr:stayrtr", 4000.0, stale=True), Category.SYSTEM_ALARM, ("", "", "")),
    (RpkiFreshness("rtr:stayrtr", 9000.0, stale=True, expired=True), Category.SYSTEM_ALARM, ("", "", "")),
    (JournalWrite("/var/lib/savd/state.db", ok=False, kind="disk-full"), Category.SYSTEM_ALARM, ("", "", "")),
    (PushResult("198.18.0.2", "r1", ok=False, reason="timeout"), Category.SYSTEM_ALARM, ("r1", "", "")),
    (EnforcerReachable("r2", reachable=False), Category.SYSTEM_ALARM, ("r2", "", "")),
    (EnforcerSessionDown("r2", down=True, reason="notification received (5,0)", diagnosis="zebra-down",
                         down_s=20), Category.SYSTEM_ALARM, ("r2", "", "")),
    (RuleInstalled("r1", "source 198.18.1.0/24", installed=False), Category.NSF_EVENT, ("r1", "", "")),
    (PrefixConflict("198.18.9.0/24", "two subnets"), Category.NSF_EVENT, ("", "", "198.18.9.0/24")),
    (GuardrailRefused("r3", "max-rules", "2500 > 2000"), Category.NSF_EVENT, ("r3", "", "")),
    (SpoofingSeen("r1", "eth1", "198.18.3.0/24", 10, 840), Category.NSF_EVENT,
     ("r1", "eth1", "198.18.3.0/24")),
    (Operational(EventType.REPORT_CHANGED, "api", "report added",
                 extra=(("router", "r1"), ("interface", "eth1"), ("prefix", "198.18.7.0/24"))),
     Category.SYSTEM_EVENT, ("r1", "eth1", "198.18.7.0/24")),
    (Operational(EventType.DAEMON, "daemon", "savd started"), Category.SYSTEM_EVENT, ("", "", "")),
]

#: the model.Event types other producers publish (speakers, BMP, BGP-LS, reports, compiler, report merge)
PUBLISHED = {"bgp.session-down": Category.SYSTEM_ALARM, "bgpls.peer-expired": Category.SYSTEM_ALARM,
             "bmp.peer-down": Category.SYSTEM_ALARM, "speaker.event-failed": Category.SYSTEM_ALARM,
             "reports.file-error": Category.SYSTEM_ALARM, "flowspec.push-failed": Category.SYSTEM_ALARM,
             "flowspec.refused": Category.NSF_EVENT, "flowspec.too-many-rules": Category.NSF_EVENT,
             "report-conflict": Category.NSF_EVENT, "report-overlap": Category.NSF_EVENT,
             "report-overridden": Category.SYSTEM_EVENT, "stale.rule": Category.NSF_EVENT}


@dataclass
class Rig:
    monitor: Monitor
    counters: CounterBoard
    metrics: Metrics
    client: TestClient


@pytest.fixture
def rig() -> Rig:
    monitor, counters = Monitor(ManualClock(T0)), CounterBoard()
    metrics = Metrics(monitor, counters)
    store = StateStore()
    ports = ApiPorts(store, RulesHolder(), RpkiStatusBoard(), PushedRules(store), monitor, counters, metrics)
    return Rig(monitor, counters, metrics, TestClient(create_app(ports, ApiConfig(token="t"))))


def test_every_event_type_has_a_category_of_its_own() -> None:
    for notice, category, _ in NOTICES:
        assert category_of(str(notice.event_type), notice.raises) is category, notice
    for type_, category in PUBLISHED.items():
        assert category_of(type_, alarm=False) is category_of(type_, alarm=True) is category, type_
    for kind in EventType:  # every typed event type is mapped, not left to the fallback
        assert category_of(str(kind), True) is category_of(str(kind), False), kind
    assert category_of("something-new", alarm=True) is Category.SYSTEM_ALARM
    assert category_of("something-new") is Category.SYSTEM_EVENT


def _logfmt(line: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line)}


SD_PARAM = r' ([^= \]"]+)="((?:[^"\\\]]|\\.)*)"'
RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>(?P<version>1) (?P<timestamp>\S+) (?P<hostname>\S+) (?P<app>\S+) (?P<procid>\S+) "
    r"(?P<msgid>\S+) "
    r"(?P<sd>-|(?:\[[^ \]]+(?: [^= \]\"]+=\"(?:[^\"\\\]]|\\.)*\")*\])+)(?: \ufeff(?P<msg>.*))?$",
    re.DOTALL)


def parse_syslog(line: str) -> dict[str, Any]:
    """An RFC 5424 message into its parts; structured data as {SD-ID: {name: value}}."""
    m = RFC5424.match(line)
    assert m is not None, line
    sd: dict[str, dict[str, str]] = {}
    for sd_id, params in re.findall(r"\[([^ \]]+)((?: [^= \]\"]+=\"(?:[^\"\\\]]|\\.)*\")*)\]", m["sd"]):
        sd[sd_id] = {k: re.sub(r"\\(.)", r"\1", v) for k, v in re.findall(SD_PARAM, params)}
    return {**m.groupdict(), "sd": sd}


@pytest.mark.parametrize("notice, category, where", NOTICES, ids=[type(n[0]).__name__ + str(i)
                                                                  for i, n in enumerate(NOTICES)])
def test_metadata_is_the_same_in_api_log_syslog_and_metrics(rig: Rig, notice: Notice, category: Category,
                                                           where: tuple[str, str, str]) -> None:
    record = rig.monitor.emit(notice)
    router, interface, prefix = where
    expected = {"time": T0, "source": notice.source, "severity": str(notice.severity),
                "category": str(category), "router": router, "interface": interface, "prefix": prefix}
    (event,) = rig.client.get("/api/v1/events").json()["events"]
    assert {k: event[k] for k in expected} == expected and event["type"] == str(notice.event_type)

    alarms = rig.client.get("/api/v1/alarms").json()["alarms"]
    if notice.raises:
        (alarm,) = alarms
        assert {k: alarm[k] for k in expected} == expected
    else:
        assert alarms == []

    log = _logfmt(format_record(record))
    assert log["time"] == rfc3339(T0) == "2023-11-14T22:13:20.250Z"
    assert (log["severity"], log["category"], log["source"], log["type"]) == (
        expected["severity"], expected["category"], expected["source"], event["type"])
    for key in ("router", "interface", "prefix"):
        assert log.get(key, "") == expected[key], key

    sys = parse_syslog(format_rfc5424(record, hostname="savd-1", procid="42"))
    meta = sys["sd"][SD_META]
    assert sys["timestamp"] == log["time"] and sys["msgid"] == event["type"][:32]
    assert {k: meta[k] for k in ("source", "severity", "category", "router", "interface", "prefix")} == {
        k: str(v) for k, v in expected.items() if k != "time"}
    assert meta["seq"] == str(record.seq) and meta["alarm"] == str(notice.raises).lower()

    text = rig.client.get("/metrics").text
    assert (f'savd_events_total{{category="{category}",severity="{expected["severity"]}",'
            f'type="{event["type"]}"}} 1.0') in text
    if notice.raises:
        assert (f'savd_alarms_active{{category="{category}",severity="{expected["severity"]}",'
                f'type="{event["type"]}"}} 1.0') in text


def test_published_events_carry_metadata_from_their_fields(rig: Rig) -> None:
    rig.monitor.publish(Event(0.0, "flowspec", "flowspec.refused", Severity.ERROR, "refused",
                              {"router": "r4"}, alarm=True))
    rig.monitor.publish(Event(0.0, "speaker:exa1", "bgp.session-down", Severity.WARNING, "down",
                              {"peer": "198.18.0.2"}))
    refused, down = rig.client.get("/api/v1/events").json()["events"]
    assert (refused["category"], refused["router"], refused["time"]) == ("nsf-event", "r4", T0)
    assert (down["category"], down["router"], down["source"]) == ("system-alarm", "", "speaker:exa1")
    (alarm,) = rig.client.get("/api/v1/alarms").json()["alarms"]
    assert (alarm["category"], alarm["router"], alarm["severity"]) == ("nsf-event", "r4", "error")


def test_counters_are_policy_hit_counters_with_metadata(rig: Rig) -> None:
    """The enforcer's document names the rule each (interface, source) counter belongs to."""
    doc: dict[str, Any] = {"rules": [{"id": "r7", "nlri": "source 198.18.3.0/24", "source": "198.18.3.0/24",
                      "per_interface": {"eth1": {}, "eth2": {}}},
                     {"id": "r8", "nlri": "source 0.0.0.0/0", "source": "0.0.0.0/0",
                      "per_interface": {"eth1": {}}}],
           "samples": [{"interface": "eth1", "source_prefix": "198.18.3.0/24", "action": "discard",
                        "packets": 5, "bytes": 420},
                       {"interface": "eth2", "source_prefix": "198.18.3.0/24", "action": "discard",
                        "packets": 1, "bytes": 84},
                       {"interface": "eth1", "source_prefix": "0.0.0.0/0", "action": "accept",
                        "packets": 9, "bytes": 900, "spoofed": False},
                       {"interface": "eth9", "source_prefix": "198.18.9.0/24", "action": "discard",
                        "packets": 0, "bytes": 0}]}
    rig.counters.update(samples_from("r1", doc), now=T0)
    doc["samples"][0] |= {"packets": 12, "bytes": 1008}
    for notice in rig.counters.update(samples_from("r1", doc), now=T0 + 5):
        rig.monitor.emit(notice)
    answer = rig.client.get("/api/v1/counters", params={"router": "r1"}).json()
    rows = {(c["interface"], c["source_prefix"]): c for c in answer["counters"]}
    hot = rows[("eth1", "198.18.3.0/24")]
    assert {k: hot[k] for k in ("time", "source", "severity", "category", "router", "interface", "prefix",
                                "rule", "total_packets", "total_bytes")} == {
        "time": T0 + 5, "source": "enforcer:r1", "severity": "warning", "category": "nsf-counter",
        "router": "r1", "interface": "eth1", "prefix": "198.18.3.0/24", "rule": "source 198.18.3.0/24",
        "total_packets": 12, "total_bytes": 1008}
    quiet = rows[("eth2", "198.18.3.0/24")]
    assert (quiet["severity"], quiet["rule"], quiet["total_packets"]) == ("info", "source 198.18.3.0/24", 1)
    assert rows[("eth9", "198.18.9.0/24")]["rule"] == ""  # the document did not name its rule
    hits = {(h["rule"], h["action"]): h for h in answer["policy_hits"]}
    per_rule = hits[("source 198.18.3.0/24", "discard")]
    assert (per_rule["interfaces"], per_rule["total_packets"], per_rule["total_bytes"]) == (
        ["eth1", "eth2"], 13, 1092)
    assert per_rule["severity"] == "warning" and per_rule["category"] == "nsf-counter"
    assert hits[("source 0.0.0.0/0", "accept")]["spoofed"] is False
    only_eth2 = rig.client.get("/api/v1/counters", params={"router": "r1", "interface": "eth2"}).json()
    assert [c["interface"] for c in only_eth2["counters"]] == ["eth2"]
    assert all("eth2" in h["interfaces"] for h in only_eth2["policy_hits"])
    text = rig.client.get("/metrics").text
    assert ('savd_enforcer_packets_total{action="discard",category="nsf-counter",interface="eth1",'
            'prefix="198.18.3.0/24",router="r1",source="enforcer:r1",source_prefix="198.18.3.0/24",'
            'spoofed="true"} 12.0') in text


def test_events_filter_by_category_router_and_interface(rig: Rig) -> None:
    for notice, _, _ in NOTICES:
        rig.monitor.emit(notice)
    get = rig.client.get
    nsf = get("/api/v1/events", params={"category": "nsf-event"}).json()["events"]
    assert {e["type"] for e in nsf} == {"rule-not-installed", "report-conflict", "flowspec.refused",
                                        "spoofing-seen"}
    both = get("/api/v1/events", params=[("category", "nsf-event"), ("category", "system-event")]).json()
    assert len(both["events"]) == len(nsf) + 2
    on_r1 = get("/api/v1/events", params={"router": "r1", "interface": "eth1"}).json()["events"]
    assert {e["type"] for e in on_r1} == {"spoofing-seen", "report-changed"}
    assert get("/api/v1/events", params={"category": "loud"}).status_code == 422


# --- syslog on real sockets ------------------------------------------------------------------------


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_syslog_over_udp_sends_parseable_rfc5424(rig: Rig, udp: socket.socket) -> None:
    port = udp.getsockname()[1]
    sink = SyslogSink(SyslogTarget.parse(f"udp://127.0.0.1:{port}"), facility="local3", hostname="savd-a",
                      min_severity=Severity.INFO)
    rig.monitor.bus.subscribe(sink)
    try:
        rig.monitor.emit(SpoofingSeen("r1", "eth1", "198.18.3.0/24", 10, 840))
        rig.monitor.emit(Operational(EventType.DAEMON, "daemon", "debug chatter", level=Severity.DEBUG))
        rig.monitor.emit(Operational(EventType.REPORT_CHANGED, "api", 'report "x" ] added \\ ok',
                                     extra=(("router", "r2"), ("odd key=", 'v"]\\'))))
        first = parse_syslog(udp.recv(65536).decode())
        second = parse_syslog(udp.recv(65536).decode())
    finally:
        sink.close()
    assert first["pri"] == str(19 * 8 + 4)  # local3, warning
    assert (first["version"], first["hostname"], first["app"], first["msgid"]) == (
        "1", "savd-a", "savd", "spoofing-seen")
    assert first["timestamp"] == "2023-11-14T22:13:20.250Z" and first["procid"].isdigit()
    assert first["sd"][SD_META] == {"seq": "1", "type": "spoofing-seen", "source": "enforcer:r1",
                                    "severity": "warning", "category": "nsf-event", "router": "r1",
                                    "interface": "eth1", "prefix": "198.18.3.0/24", "alarm": "true"}
    assert first["sd"][SD_FIELDS]["packets"] == "10"
    assert first["msg"] == "spoofed traffic on r1 eth1 from 198.18.3.0/24: 10 packets, 840 bytes dropped"
    # the debug event stayed below min_severity; escapes survive the round trip
    assert second["pri"] == str(19 * 8 + 6) and second["sd"][SD_META]["seq"] == "3"
    assert second["sd"][SD_FIELDS] == {"odd_key_": 'v"]\\', "router": "r2"}
    assert second["msg"] == 'report "x" ] added \\ ok'
    assert sink.sent == 2 and sink.dropped == 0


def test_syslog_over_tcp_uses_octet_counting(rig: Rig) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(5)
    sink = SyslogSink(SyslogTarget.parse(f"tcp://127.0.0.1:{server.getsockname()[1]}"))
    rig.monitor.bus.subscribe(sink)
    try:
        rig.monitor.emit(BgpSession("exa1", "198.18.0.2", "r1", up=False))
        rig.monitor.emit(BgpSession("exa1", "198.18.0.2", "r1", up=True))
        conn, _ = server.accept()
        conn.settimeout(5)
        data = b""
        while data.count(b"<") < 2 or not data.endswith(b"up"):
            data += conn.recv(65536)
        conn.close()
    finally:
        sink.close()
        server.close()
    messages = []
    while data:  # RFC 6587 3.4.1: MSG-LEN SP SYSLOG-MSG
        length, _, rest = data.partition(b" ")
        messages.append(rest[:int(length)].decode())
        data = rest[int(length):]
    down, up = (parse_syslog(m) for m in messages)
    assert (down["pri"], down["msgid"], down["sd"][SD_META]["category"]) == (
        str(3 * 8 + 3), "bgp.session-down", "system-alarm")
    assert up["sd"][SD_META]["alarm"] == "false" and up["msg"].endswith("up")


def test_syslog_to_a_unix_datagram_socket_like_dev_log(rig: Rig, tmp_path: Path) -> None:
    path = tmp_path / "log"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    server.settimeout(5)
    sink = SyslogSink(SyslogTarget.parse(str(path)))
    rig.monitor.bus.subscribe(sink)
    try:
        rig.monitor.emit(EnforcerReachable("r2", reachable=False, error="refused"))
        got = parse_syslog(server.recv(65536).decode())
    finally:
        sink.close()
        server.close()
    assert got["sd"][SD_META]["router"] == "r2" and got["msgid"] == "enforcer-unreachable"


def test_an_absent_collector_drops_and_counts_without_blocking(rig: Rig, caplog: pytest.LogCaptureFixture
                                                                ) -> None:
    sink = SyslogSink(SyslogTarget("unix", path="/nonexistent/savd-log"), retry_s=60)
    rig.monitor.bus.subscribe(sink)
    with caplog.at_level(logging.WARNING, logger="savd.monitor.syslog"):
        for _ in range(3):
            rig.monitor.emit(RtrSession("c", up=False))
        sink.close()
    assert sink.sent == 0 and sink.dropped == 3
    assert sum("syslog-connect-failed" in r.getMessage() for r in caplog.records) == 1  # then waits retry_s


def test_syslog_configuration(tmp_path: Path) -> None:
    head = '[appliance]\nasn = 65000\nrouter_id = "198.18.0.1"\ndata_dir = "/tmp/x"\n'
    config = parse_config(head + '[syslog]\ntarget = "tcp://[2001:db8::1]:6514"\nfacility = "local5"\n'
                                 'min_severity = "warning"\n', tmp_path / "savd.toml")
    assert (config.syslog.target, config.syslog.facility, config.syslog.min_severity) == (
        "tcp://[2001:db8::1]:6514", "local5", Severity.WARNING)
    assert SyslogTarget.parse(config.syslog.target) == SyslogTarget("tcp", "2001:db8::1", 6514)
    assert parse_config(head, tmp_path / "savd.toml").syslog.target == ""  # off by default
    with pytest.raises(ConfigError) as bad:
        parse_config(head + '[syslog]\ntarget = "syslog.example:514"\nfacility = "local9"\n'
                            'min_severity = "loud"\n', tmp_path / "savd.toml")
    text = str(bad.value)
    assert "syslog.target" in text and "syslog.facility" in text and "syslog.min_severity" in text


def test_record_metadata_is_computed_once_per_rule() -> None:
    """The bus record's metadata and the alarm's agree on an event raised through `publish`."""
    monitor = Monitor(ManualClock(T0))
    record: Record = monitor.publish(Event(0.0, "flowspec", "flowspec.refused", Severity.ERROR, "x",
                                           {"router": "r4", "interface": "eth2"}, alarm=True))
    (alarm,) = monitor.alarms.active()
    served = alarm.to_dict()
    assert record.meta.to_dict() == {k: served[k] for k in record.meta.to_dict()}
