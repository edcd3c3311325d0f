"""Structured log lines: one key=value line per event, parseable by logfmt tools.

Keys are fixed first (type, severity, source, alarm, seq), then the event's fields in sorted order, then
msg. Values with spaces, quotes or '=' are double-quoted with backslash escapes.
"""

from __future__ import annotations

import logging

from appliance.model import Severity
from appliance.monitor.bus import Record

LEVELS = {
    Severity.DEBUG: logging.DEBUG,
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.ERROR: logging.ERROR,
    Severity.CRITICAL: logging.CRITICAL,
}


def quote(value: str) -> str:
    if value and not any(c in value for c in ' "=\\\n\t'):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def format_record(record: Record) -> str:
    e = record.event
    pairs = [
        ("type", e.type),
        ("severity", str(e.severity)),
        ("source", e.source),
        ("alarm", "true" if e.alarm else "false"),
        ("seq", str(record.seq)),
    ]
    pairs += sorted((k, v) for k, v in e.fields.items() if k not in {"type", "severity", "source", "msg"})
    pairs.append(("msg", e.message))
    return " ".join(f"{k}={quote(v)}" for k, v in pairs)


class LogSink:
    """A bus subscriber writing each event to a logger at the level of its severity."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("savd.events")

    def __call__(self, record: Record) -> None:
        self.logger.log(LEVELS[record.event.severity], "%s", format_record(record))
