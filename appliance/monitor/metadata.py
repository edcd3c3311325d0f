"""The common metadata every monitoring record carries (seeds/002, the I2NSF NSF monitoring model).

Section 6 of the model gives each message a time, the module that made it, a severity and its class;
section 7 classes the messages by domain and kind: system alarms, system events, system logs, NSF events
(attacks: here, spoofed traffic), NSF logs and NSF counters (here, the enforcers' policy-hit counters).
savd adds what it concerns: the router, interface and prefix, when there is one.

One function per question, so the API, the key=value log, syslog and Prometheus cannot disagree:
`category_of(type, alarm)` (from the one vocabulary, vocabulary.py) and `concerns(fields)`;
`event_metadata(event)` puts them together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from appliance.model import Severity
from appliance.monitor.vocabulary import Category, kind_of

__all__ = ["Category", "Concerns", "Metadata", "category_of", "concerns", "event_metadata", "rfc3339"]

if TYPE_CHECKING:
    from appliance.model import Event


def category_of(type_: str, alarm: bool = False) -> Category:
    """The category of an event type (the vocabulary's); a type savd does not know is a system alarm or
    event."""
    known = kind_of(type_)
    if known is not None:
        return known.category
    return Category.SYSTEM_ALARM if alarm else Category.SYSTEM_EVENT


@dataclass(frozen=True, slots=True)
class Concerns:
    """What a record is about: its router, interface and prefix ("" where it has none)."""

    router: str = ""
    interface: str = ""
    prefix: str = ""


def concerns(fields: Mapping[str, str]) -> Concerns:
    """From a record's fields: `router`, `interface`, and `prefix` or, for counters and spoofing, the
    `source_prefix` the traffic claimed."""
    return Concerns(fields.get("router", ""), fields.get("interface", ""),
                    fields.get("prefix", "") or fields.get("source_prefix", ""))


@dataclass(frozen=True, slots=True)
class Metadata:
    """The common metadata of one record, in the order every exporter serves it."""

    time: float
    source: str
    severity: Severity
    category: Category
    router: str = ""
    interface: str = ""
    prefix: str = ""

    def to_dict(self) -> dict[str, str | float]:
        return {"time": self.time, "source": self.source, "severity": str(self.severity),
                "category": str(self.category), "router": self.router, "interface": self.interface,
                "prefix": self.prefix}


def event_metadata(event: Event) -> Metadata:
    where = concerns(event.fields)
    return Metadata(event.time, event.source, event.severity, category_of(event.type, event.alarm),
                    where.router, where.interface, where.prefix)


def rfc3339(t: float) -> str:
    """UTC with milliseconds, as RFC 5424 and logfmt readers expect: 2023-11-14T22:13:20.123Z."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
