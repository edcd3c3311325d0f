"""RFC 5424 syslog output of the event bus, beside the key=value log: for sites whose collectors speak
syslog (seeds/002 4.1 names RFC 5424 and RFC 6587 for conveying records).

Each event is one message: PRI from the configured facility and the event's severity, VERSION 1, the
event's time (RFC 3339, UTC, milliseconds), HOSTNAME, APP-NAME, PROCID (savd's pid), MSGID = the event
type, and structured data: `meta@32473` with the common metadata (monitor/metadata.py) plus seq and alarm,
and `fields@32473` with the event's own fields; MSG is the event's message (UTF-8, after a BOM). 32473 is
the private enterprise number RFC 5612 reserves for documentation: the SD-IDs are savd's own.

Targets: udp://HOST:PORT, tcp://HOST:PORT (RFC 6587 octet counting), unix:///dev/log (datagram, else
stream), or a bare path. Sending happens on a thread behind a bounded queue, so a slow or absent collector
never blocks the event loop: when the queue is full, messages are dropped and counted (`dropped`), and a
lost connection is retried at the next message, at most every `retry_s`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import socket
import threading
import time
from dataclasses import dataclass

from appliance.model import Severity
from appliance.monitor.bus import Record
from appliance.monitor.metadata import rfc3339

log = logging.getLogger("savd.monitor.syslog")

#: RFC 5424 6.2.1 severities
SEVERITY_CODES = {Severity.CRITICAL: 2, Severity.ERROR: 3, Severity.WARNING: 4, Severity.INFO: 6,
                  Severity.DEBUG: 7}
FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
              "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, **{f"local{i}": 16 + i for i in range(8)}}
SD_META = "meta@32473"
SD_FIELDS = "fields@32473"
BOM = "\ufeff"
_NAME_BAD = re.compile(r'[^!-~]|[=\]" ]')  # SD-NAME: printable US-ASCII but = ] " and space
_HEADER_BAD = re.compile(r"[^!-~]")          # header fields: printable US-ASCII, no space


@dataclass(frozen=True, slots=True)
class SyslogTarget:
    """Where messages go: transport "udp", "tcp" or "unix", and the address (host, port) or path."""

    transport: str
    host: str = ""
    port: int = 0
    path: str = ""

    @staticmethod
    def parse(text: str) -> SyslogTarget:
        """udp://host:port, tcp://host:port ([v6] in brackets), unix:///dev/log or /dev/log."""
        if text.startswith("/"):
            return SyslogTarget("unix", path=text)
        scheme, sep, rest = text.partition("://")
        if not sep or scheme not in ("udp", "tcp", "unix"):
            raise ValueError(f"{text!r}: expected udp://HOST:PORT, tcp://HOST:PORT, unix:///PATH or /PATH")
        if scheme == "unix":
            if not rest.startswith("/"):
                raise ValueError(f"{text!r}: a unix target needs an absolute path")
            return SyslogTarget("unix", path=rest)
        host, colon, port = rest.rpartition(":")
        if not colon or not port.isdigit() or not 0 < int(port) < 65536 or not host:
            raise ValueError(f"{text!r}: needs HOST:PORT with a port from 1 to 65535")
        return SyslogTarget(scheme, host.strip("[]"), int(port))

    def __str__(self) -> str:
        if self.transport == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}://{host}:{self.port}"


def _sd_name(name: str) -> str:
    return _NAME_BAD.sub("_", name)[:32] or "_"


def _sd_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _sd_element(sd_id: str, params: list[tuple[str, str]]) -> str:
    return "[" + " ".join([sd_id, *(f'{_sd_name(k)}="{_sd_value(v)}"' for k, v in params)]) + "]"


def _header_field(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most `limit` characters, "-" when empty."""
    return _HEADER_BAD.sub("_", value)[:limit] or "-"


def format_rfc5424(record: Record, facility: int = FACILITIES["daemon"], hostname: str = "",
                   app_name: str = "savd", procid: str = "") -> str:
    """One RFC 5424 message for one bus record (no trailing newline, no transport framing)."""
    e, meta = record.event, record.meta
    pri = facility * 8 + SEVERITY_CODES[meta.severity]
    header = " ".join([
        f"<{pri}>1", rfc3339(meta.time), _header_field(hostname or socket.gethostname(), 255),
        _header_field(app_name, 48), _header_field(procid or str(os.getpid()), 128),
        _header_field(e.type, 32),
    ])
    common = [(k, str(v)) for k, v in meta.to_dict().items() if k != "time"]  # the time is TIMESTAMP
    meta_params = [("seq", str(record.seq)), ("type", e.type), *common,
                   ("alarm", "true" if e.alarm else "false")]
    sd = _sd_element(SD_META, meta_params)
    if e.fields:
        sd += _sd_element(SD_FIELDS, sorted(e.fields.items()))
    return f"{header} {sd} {BOM}{e.message}"


class SyslogSink:
    """A bus subscriber sending each event at or above `min_severity` to `target` from a thread."""

    def __init__(self, target: SyslogTarget, facility: str = "daemon", app_name: str = "savd",
                 hostname: str = "", min_severity: Severity = Severity.INFO, queue_size: int = 10_000,
                 retry_s: float = 5.0) -> None:
        if facility not in FACILITIES:
            raise ValueError(f"unknown syslog facility {facility!r}")
        self.target = target
        self.facility = FACILITIES[facility]
        self.app_name = app_name
        self.hostname = hostname or socket.gethostname()
        self.floor = list(Severity).index(min_severity)
        self.retry_s = retry_s
        self.sent = 0
        self.dropped = 0
        self._queue: queue.Queue[str | None] = queue.Queue(queue_size)
        self._sock: socket.socket | None = None
        self._next_try = 0.0
        self._thread = threading.Thread(target=self._run, name="savd-syslog", daemon=True)
        self._thread.start()

    def __call__(self, record: Record) -> None:
        if list(Severity).index(record.event.severity) < self.floor:
            return
        line = format_rfc5424(record, self.facility, self.hostname, self.app_name)
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout_s: float = 2.0) -> None:
        """Send what is queued (for at most `timeout_s`), then close the socket."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)
        self._disconnect()

    def _run(self) -> None:
        while True:
            line = self._queue.get()
            if line is None:
                return
            self._send(line)

    def _send(self, line: str) -> None:
        data = line.encode("utf-8")
        for _ in range(2):  # a stale stream connection is found on send: reconnect once
            sock = self._connect()
            if sock is None:
                self.dropped += 1
                return
            try:
                if self.target.transport == "tcp":
                    sock.sendall(f"{len(data)} ".encode() + data)  # RFC 6587 octet counting
                elif sock.type == socket.SOCK_STREAM:  # a stream /dev/log: newline framing
                    sock.sendall(data + b"\n")
                else:
                    sock.send(data)
                self.sent += 1
                return
            except OSError as exc:
                log.warning("event=syslog-send-failed target=%s error=%r", self.target, str(exc))
                self._disconnect()
        self.dropped += 1

    def _connect(self) -> socket.socket | None:
        if self._sock is not None:
            return self._sock
        if time.monotonic() < self._next_try:
            return None
        t = self.target
        try:
            if t.transport == "unix":
                try:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    sock.connect(t.path)
                except OSError:
                    sock.close()
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.connect(t.path)
            else:
                kind = socket.SOCK_DGRAM if t.transport == "udp" else socket.SOCK_STREAM
                family, _, _, _, address = socket.getaddrinfo(t.host, t.port, type=kind)[0]
                sock = socket.socket(family, kind)
                sock.settimeout(5.0)
                sock.connect(address)
        except OSError as exc:
            log.warning("event=syslog-connect-failed target=%s error=%r", t, str(exc))
            self._next_try = time.monotonic() + self.retry_s
            return None
        self._sock = sock
        return sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
