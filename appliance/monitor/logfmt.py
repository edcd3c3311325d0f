"""Structured log lines: one key=value line per event, parseable by logfmt tools.

Keys are fixed first: the common metadata (time in RFC 3339 UTC, type, severity, category, source, and the
router, interface and prefix it concerns when it has them: monitor/metadata.py), alarm, seq; then the
event's other fields in sorted order, then msg. Values with spaces, quotes or '=' are double-quoted with
backslash escapes.
"""

from __future__ import annotations

import logging

from appliance.model import Severity
from appliance.monitor.bus import Record
from appliance.monitor.metadata import rfc3339

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
    e, meta = record.event, record.meta
    pairs = [
        ("time", rfc3339(meta.time)),
        ("type", e.type),
        ("severity", str(meta.severity)),
        ("category", str(meta.category)),
        ("source", meta.source),
    ]
    pairs += [(k, v) for k, v in (("router", meta.router), ("interface", meta.interface),
                                  ("prefix", meta.prefix)) if v]
    pairs += [("alarm", "true" if e.alarm else "false"), ("seq", str(record.seq))]
    fixed = {k for k, _ in pairs} | {"msg"}
    pairs += sorted((k, v) for k, v in e.fields.items() if k not in fixed)
    pairs.append(("msg", e.message))
    return " ".join(f"{k}={quote(v)}" for k, v in pairs)


class LogSink:
    """A bus subscriber writing each event to a logger at the level of its severity."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("savd.events")

    def __call__(self, record: Record) -> None:
        self.logger.log(LEVELS[record.event.severity], "%s", format_record(record))
