"""The common metadata every monitoring record carries (seeds/002, the I2NSF NSF monitoring model).

Section 6 of the model gives each message a time, the module that made it, a severity and its class;
section 7 classes the messages by domain and kind: system alarms, system events, system logs, NSF events
(attacks: here, spoofed traffic), NSF logs and NSF counters (here, the enforcers' policy-hit counters).
savd adds what it concerns: the router, interface and prefix, when there is one.

One function per question, so the API, the key=value log, syslog and Prometheus cannot disagree:
`category_of(type, alarm)` and `concerns(fields)`; `event_metadata(event)` puts them together.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from appliance.model import Severity

if TYPE_CHECKING:
    from appliance.model import Event


class Category(enum.StrEnum):
    """The classes of seeds/002 section 7 that savd emits."""

    SYSTEM_ALARM = "system-alarm"    # savd or one of its links (sessions, caches, journal, enforcers) fails
    SYSTEM_EVENT = "system-event"    # lifecycle and configuration changes (7.2.2): started, reports, rules
    SYSTEM_LOG = "system-log"        # plain log lines of the daemon's modules
    NSF_EVENT = "nsf-event"          # the SAV function: spoofing seen, a policy refused or not installed
    NSF_COUNTER = "nsf-counter"      # policy-hit counters of the enforcers (7.7.2)


#: event type -> category, for the types savd's producers emit; dotted types are matched by their family
_BY_TYPE: dict[str, Category] = {
    "bgp-session": Category.SYSTEM_ALARM,
    "rtr-session": Category.SYSTEM_ALARM,
    "rpki-stale": Category.SYSTEM_ALARM,
    "rpki-expired": Category.SYSTEM_ALARM,
    "push-failed": Category.SYSTEM_ALARM,
    "enforcer-unreachable": Category.SYSTEM_ALARM,
    "journal-failed": Category.SYSTEM_ALARM,
    "flowspec.push-failed": Category.SYSTEM_ALARM,
    "rule-not-installed": Category.NSF_EVENT,
    "prefix-conflict": Category.NSF_EVENT,
    "guardrail-refused": Category.NSF_EVENT,
    "spoofing-seen": Category.NSF_EVENT,
    "rules-changed": Category.SYSTEM_EVENT,
    "report-changed": Category.SYSTEM_EVENT,
    "report-overridden": Category.SYSTEM_EVENT,
    "report-conflict": Category.NSF_EVENT,     # the report merge: one prefix, two subnets
    "report-overlap": Category.NSF_EVENT,
    "state-restored": Category.SYSTEM_EVENT,
    "daemon": Category.SYSTEM_EVENT,
}
_BY_FAMILY: dict[str, Category] = {
    "bgp": Category.SYSTEM_ALARM,       # bgp.session-down/up (speakers)
    "bgpls": Category.SYSTEM_ALARM,     # bgpls.peer-expired
    "bmp": Category.SYSTEM_ALARM,       # bmp.peer-down, bmp.malformed, ...
    "speaker": Category.SYSTEM_ALARM,   # speaker.event-failed
    "reports": Category.SYSTEM_ALARM,   # reports.file-error
    "flowspec": Category.NSF_EVENT,     # the compiler's findings: a policy refused, forced, emptied
    "drift": Category.NSF_EVENT,        # what a router holds departs from what savd intends
    "stale": Category.NSF_EVENT,
}


def category_of(type_: str, alarm: bool = False) -> Category:
    """The category of an event type; a type savd does not know is a system alarm or event."""
    known = _BY_TYPE.get(type_)
    if known is None:
        known = _BY_FAMILY.get(type_.split(".", 1)[0].split("-", 1)[0])
    if known is not None:
        return known
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
