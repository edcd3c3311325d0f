"""Spoofing traces (seeds/003 traceability) from enforcer counter samples: the upstream neighbour of each
interface from the topology and the eBGP neighbours, the top spoofed sources with per-minute counts, the
bounds (window, series), GET /api/v1/traces and `savd api traces`."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from appliance.api import ApiPorts, create_app
from appliance.api.cli import request_for, traces_table
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.cli import build_parser
from appliance.config import ApiConfig
from appliance.model import Interface, Link, Neighbor, Relationship
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.counters import CounterBoard, CounterSample
from appliance.monitor.metrics import Metrics
from appliance.monitor.traces import TraceBoard, Upstream, upstream
from appliance.state import Announce, StateStore

T0 = 1_700_000_020.0  # 40 s into a minute
TOPOLOGY = (
    Interface("r1", "eth1", ("198.18.1.1/24",)),                      # access: hosts
    Interface("r1", "eth2", ("198.18.12.1/30",)),                     # to r2
    Interface("r2", "eth1", ("198.18.12.2/30",)),
    Interface("r2", "eth3", ("198.18.23.1/29",)),                     # a LAN to r3 and r5
    Interface("r3", "eth1", ("198.18.23.2/29",)),
    Interface("r5", "eth1", ("198.18.23.3/29",)),
    Interface("r4", "eth2", ("203.0.113.1/30",), external=True),      # eBGP to AS 65100
    Interface("r4", "eth3", ("203.0.113.5/30",), external=True),      # eBGP, peer not known
    Link("r2", "r1", "198.18.12.2", "198.18.12.1", 10),
    Link("r1", "r2", "198.18.12.1", "198.18.12.2", 10),
    Link("r2", "r3", "198.18.23.1", "198.18.23.2", 10),
    Link("r2", "r5", "198.18.23.1", "198.18.23.3", 10),
    Neighbor("r4", "eth2", 65100, Relationship.PROVIDER, "203.0.113.2"),
)


def test_upstream_of_each_kind_of_interface() -> None:
    ifaces = [f for f in TOPOLOGY if isinstance(f, Interface)]
    links = [f for f in TOPOLOGY if isinstance(f, Link)]
    nbrs = [f for f in TOPOLOGY if isinstance(f, Neighbor)]

    def up(r: str, i: str) -> list[Upstream]:
        return upstream(r, i, ifaces, links, nbrs)

    assert up("r2", "eth1") == [Upstream("internal", "r1", "198.18.12.1")]
    assert up("r1", "eth2") == [Upstream("internal", "r2", "198.18.12.2")]
    assert up("r2", "eth3") == [Upstream("internal", "r3", "198.18.23.2"),
                                Upstream("internal", "r5", "198.18.23.3")]
    assert up("r4", "eth2") == [Upstream("external", address="203.0.113.2", asn=65100,
                                         relationship="provider")]
    assert up("r4", "eth3") == [Upstream("external")]
    assert up("r1", "eth1") == [Upstream("access")]
    assert up("r9", "eth1") == [Upstream("unknown")]
    # a hosts' interface the topology does not describe (no IGP there) but reports name: access
    assert upstream("r9", "eth1", ifaces, links, nbrs, {("r9", "eth1")}) == [Upstream("access")]
    # a configured eBGP neighbour names the peer even where BGP-LS does not mark the interface external
    assert upstream("r1", "eth1", ifaces, links, [Neighbor("r1", "eth1", 64512, Relationship.CUSTOMER,
                                                           "198.18.1.200")])[0].asn == 64512


def sample(iface: str, source: str, packets: int, router: str = "r4") -> CounterSample:
    return CounterSample(router, iface, source, "discard", packets, packets * 84)


class Rig:
    def __init__(self, board: TraceBoard | None = None, inputs: bool = False) -> None:
        self.clock = ManualClock(T0)
        self.monitor, self.counters = Monitor(self.clock), CounterBoard()
        self.traces = board or TraceBoard()
        self.monitor.bus.subscribe(self.traces.on_record)
        self.store = StateStore()
        self.store.apply(Announce("bgp-ls:test", TOPOLOGY))
        ports = ApiPorts(self.store, RulesHolder(), RpkiStatusBoard(), PushedRules(self.store), self.monitor,
                         self.counters, Metrics(self.monitor, self.counters), traces=self.traces)
        self.client = TestClient(create_app(ports, ApiConfig(token="t")))
        self.absolute: dict[tuple[str, str, str], int] = {}

    def poll(self, rises: dict[tuple[str, str], int], router: str = "r4") -> None:
        """One enforcer poll: absolute counters that rose by `rises` since the last one."""
        for key, n in rises.items():
            self.absolute[(router, *key)] = self.absolute.get((router, *key), 0) + n
        samples = [sample(i, s, n, r) for (r, i, s), n in sorted(self.absolute.items())]
        for notice in self.counters.update(samples, self.clock.now()):
            self.monitor.emit(notice)


def test_traces_from_counter_samples_rank_sources_and_bucket_per_minute() -> None:
    rig = Rig()
    rig.poll({("eth2", "198.18.1.0/24"): 0, ("eth2", "198.18.3.0/24"): 0, ("eth2", "198.18.5.0/24"): 0,
              ("eth3", "198.18.1.0/24"): 0})  # the baseline: nothing attributed
    rig.poll({("eth2", "198.18.1.0/24"): 10, ("eth2", "198.18.3.0/24"): 30})
    rig.clock.advance(5)
    rig.poll({("eth2", "198.18.1.0/24"): 5})          # same minute as the first rise
    rig.clock.advance(30)                            # the next minute
    rig.poll({("eth2", "198.18.1.0/24"): 7, ("eth2", "198.18.5.0/24"): 22, ("eth3", "198.18.1.0/24"): 3})
    answer = rig.client.get("/api/v1/traces").json()
    assert (answer["bucket_s"], answer["window_s"]) == (60, 3600)
    eth2, eth3 = answer["traces"]  # most packets first
    assert (eth2["router"], eth2["interface"], eth2["packets"], eth2["bytes"]) == ("r4", "eth2", 74, 74 * 84)
    assert eth2["upstream"] == [{"kind": "external", "router": "", "address": "203.0.113.2", "asn": 65100,
                                 "relationship": "provider"}]
    assert [(s["prefix"], s["packets"]) for s in eth2["sources"]] == [
        ("198.18.3.0/24", 30), ("198.18.1.0/24", 22), ("198.18.5.0/24", 22)]  # 22 = 22: by bytes, then prefix
    one = eth2["sources"][1]
    minute = T0 - 40
    assert one["series"] == [{"time": minute, "packets": 15, "bytes": 15 * 84},
                             {"time": minute + 60, "packets": 7, "bytes": 7 * 84}]
    assert (one["first_seen"], one["last_seen"]) == (T0, T0 + 35)
    assert (eth3["interface"], eth3["packets"], eth3["upstream"][0]["kind"]) == ("eth3", 3, "external")

    top1 = rig.client.get("/api/v1/traces", params={"router": "r4", "interface": "eth2", "top": 1}).json()
    (only,) = top1["traces"]
    assert [s["prefix"] for s in only["sources"]] == ["198.18.3.0/24"] and only["source_count"] == 3
    later = rig.client.get("/api/v1/traces", params={"since": minute + 60}).json()["traces"]
    assert [(t["interface"], t["packets"]) for t in later] == [("eth2", 29), ("eth3", 3)]
    assert rig.client.get("/api/v1/traces", params={"router": "r1"}).json()["traces"] == []
    assert rig.client.get("/api/v1/traces", params={"top": 0}).status_code == 422


def test_internal_and_access_interfaces_name_their_upstream_in_the_api() -> None:
    rig = Rig()
    rig.poll({("eth1", "198.18.3.0/24"): 0}, router="r2")
    rig.poll({("eth1", "198.18.3.0/24"): 0}, router="r1")
    rig.poll({("eth1", "198.18.3.0/24"): 4}, router="r2")
    rig.poll({("eth1", "198.18.3.0/24"): 2}, router="r1")
    by_router = {t["router"]: t for t in rig.client.get("/api/v1/traces").json()["traces"]}
    assert by_router["r2"]["upstream"] == [{"kind": "internal", "router": "r1", "address": "198.18.12.1",
                                            "asn": None, "relationship": ""}]
    assert by_router["r1"]["upstream"][0]["kind"] == "access"


def test_quiet_counters_and_legitimate_traffic_make_no_trace() -> None:
    rig = Rig()
    legit = CounterSample("r1", "eth1", "198.18.1.0/24", "accept", 0, 0, spoofed=False)
    rig.counters.update([legit], T0)
    for notice in rig.counters.update([replace(legit, packets=50, bytes=5000)], T0 + 5):
        rig.monitor.emit(notice)
    rig.poll({("eth2", "198.18.1.0/24"): 0})
    rig.poll({("eth2", "198.18.1.0/24"): 0})
    assert rig.client.get("/api/v1/traces").json()["traces"] == []


def test_the_window_and_the_series_are_bounded() -> None:
    board = TraceBoard(bucket_s=60, window_s=600, max_series=3)
    for minute in range(30):  # 30 minutes of traffic: 10 buckets kept
        board.add("r4", "eth2", "198.18.1.0/24", 1, 84, T0 + 60 * minute)
    (trace,) = board.traces(T0 + 60 * 29)
    (source,) = trace.sources
    assert len(source.series) == 10 and source.packets == 10
    assert board.traces(T0 + 60 * 29 + 700) == []  # all of it older than the window
    for i in range(5):  # 3 series at most: the least recently active go
        board.add("r4", "eth2", f"198.18.{10 + i}.0/24", 1, 84, T0 + 60 * 29)
    prefixes = {s.prefix for t in board.traces(T0 + 60 * 29) for s in t.sources}
    assert prefixes == {"198.18.12.0/24", "198.18.13.0/24", "198.18.14.0/24"} and board.evicted == 3
    with pytest.raises(ValueError):
        TraceBoard(bucket_s=60, window_s=30)


def test_savd_api_traces_maps_and_prints_a_table() -> None:
    args = build_parser().parse_args(["api", "traces", "--router", "r4", "--top", "3"])
    assert request_for(args) == ("GET", "/api/v1/traces", {"router": "r4", "top": 3}, None)
    follow = build_parser().parse_args(["api", "events", "--follow", "--category", "nsf-event"])
    assert request_for(follow) == ("GET", "/api/v1/events/stream", {
        "since": 0, "severity": "debug", "alarms_only": "false", "category": ["nsf-event"]}, None)
    rig = Rig()
    rig.poll({("eth2", "198.18.1.0/24"): 0})
    rig.poll({("eth2", "198.18.1.0/24"): 12})
    text = traces_table(rig.client.get("/api/v1/traces").json())
    lines = text.splitlines()
    assert lines[0] == "r4 eth2  from AS65100 (203.0.113.2, provider)"
    assert "12 packets, 1008 bytes dropped" in lines[1] and "1 spoofed source prefix(es)" in lines[1]
    assert lines[3].split() == ["198.18.1.0/24", "12", "1008", "2023-11-14", "22:13:40Z", "12"]
    assert traces_table({"bucket_s": 60, "window_s": 3600, "traces": []}) == (
        "no spoofed traffic seen in the last 60 minutes\n")
