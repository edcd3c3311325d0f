"""Prometheus /metrics, built from the monitor's own state on each scrape (no module-level registry).

Families: savd_build_info{version,python}, savd_events_total{type,severity} (counted from the bus),
savd_alarms_active{type}, savd_flowspec_push_failures_total{router,peer} (from flowspec.push-failed events),
savd_enforcer_packets_total / _bytes_total{router,interface,source_prefix,spoofed} (kept monotonic
across enforcer restarts), any gauges the daemon adds (`add_gauge`: state version, facts per kind, RTR
caches, rules held per FlowSpec peer, ...) and collectors of other parts (`add_collector`: the API's own
request counts, appliance/api/httpmetrics.py).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from appliance import __version__
from appliance.monitor.bus import Record
from appliance.monitor.counters import CounterBoard
from appliance.monitor.metadata import category_of
from appliance.monitor.monitor import Monitor

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

GaugeSource = Callable[[], Mapping[tuple[str, ...], float]]


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("savd_build_info", "savd's version and Python (always 1)",
                                 labels=["version", "python"])
        info.add_metric([__version__, platform.python_version()], 1)
        yield info
        failures = CounterMetricFamily("savd_flowspec_push_failures", "FlowSpec pushes that failed, by "
                                       "router and peer", labels=["router", "peer"])
        for (router, peer), n in sorted(self.m.push_failures.items()):
            failures.add_metric([router, peer], n)
        yield failures
        events = CounterMetricFamily("savd_events", "Events published, by type, severity and category",
                                     labels=["type", "severity", "category"])
        for (type_, severity, category), n in sorted(self.m.event_counts.items()):
            events.add_metric([type_, severity, category], n)
        yield events
        alarms = GaugeMetricFamily("savd_alarms_active", "Alarms raised now, by type, severity and category",
                                   labels=["type", "severity", "category"])
        by_kind: dict[tuple[str, str, str], int] = {}
        for a in self.m.monitor.alarms.active():
            key = (a.type, str(a.severity), str(category_of(a.type, alarm=True)))
            by_kind[key] = by_kind.get(key, 0) + 1
        for labels_of, n in sorted(by_kind.items()):
            alarms.add_metric(list(labels_of), n)
        yield alarms
        labels = ["router", "interface", "prefix", "source_prefix", "action", "spoofed", "source", "category"]
        packets = CounterMetricFamily("savd_enforcer_packets", "Packets matched per enforcer rule and "
                                      "interface (policy hits)", labels=labels)
        octets = CounterMetricFamily("savd_enforcer_bytes", "Bytes matched per enforcer rule and interface",
                                     labels=labels)
        for row in self.m.counters.rows():
            values = [row["router"], row["interface"], row["prefix"], row["source_prefix"], row["action"],
                      "true" if row["spoofed"] else "false", row["source"], row["category"]]
            packets.add_metric(values, row["total_packets"])
            octets.add_metric(values, row["total_bytes"])
        yield packets
        yield octets
        for name, (help_text, label_names, source) in sorted(self.m.gauges.items()):
            gauge = GaugeMetricFamily(name, help_text, labels=list(label_names))
            for label_values, value in sorted(source().items()):
                gauge.add_metric(list(label_values), value)
            yield gauge


class Metrics:
    """Owns a private CollectorRegistry; subscribe `on_record` to the bus to count events."""

    def __init__(self, monitor: Monitor, counters: CounterBoard) -> None:
        self.monitor = monitor
        self.counters = counters
        self.event_counts: dict[tuple[str, str, str], int] = {}
        self.gauges: dict[str, tuple[str, tuple[str, ...], GaugeSource]] = {}
        self.push_failures: dict[tuple[str, str], int] = {}
        self.collectors: dict[str, Collector] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        monitor.bus.subscribe(self.on_record)

    def on_record(self, record: Record) -> None:
        meta = record.meta
        key = (record.event.type, str(meta.severity), str(meta.category))
        self.event_counts[key] = self.event_counts.get(key, 0) + 1
        if record.event.type == "flowspec.push-failed":
            fields = record.event.fields
            where = (fields.get("router", ""), fields.get("peer", ""))
            self.push_failures[where] = self.push_failures.get(where, 0) + 1

    def add_gauge(self, name: str, help_text: str, labels: tuple[str, ...], source: GaugeSource) -> None:
        """A gauge family read from `source()` at each scrape: {label values: value}."""
        self.gauges[name] = (help_text, labels, source)

    def add_collector(self, name: str, collector: Collector) -> None:
        """Scrape `collector` too; a later one of the same `name` replaces it (an app built again)."""
        old = self.collectors.pop(name, None)
        if old is not None:
            self.registry.unregister(old)
        self.collectors[name] = collector
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)
