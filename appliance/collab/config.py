"""The [collaboration] section: this instance's TLS identity and listener, and its [[collaboration.peer]]s.

Read with `config_reader.Table` like every section of appliance/config.py, so each problem names its
key and line; kept here (not in appliance/config.py) so the protocol package owns its settings, and
importing only config_reader so appliance/config.py can import `read_collab` without a cycle.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from appliance.collab.model import MODES
from appliance.collab.replay import DEFAULT_MAX_SKEW_S
from appliance.config_reader import Table, read_each

MAX_ASN = 2**32 - 1


@dataclass(frozen=True)
class CollabPeer:
    """Another AS's savd: its certificate name, AS, URL; whether we initiate and what we accept."""

    name: str
    asn: int
    url: str  # https://host:port
    initiate: bool = False
    modes: tuple[str, ...] = MODES  # by preference
    duration_s: float = 86400.0  # what we propose, and the longest we accept from this peer
    send_every_s: float = 300.0


@dataclass(frozen=True)
class CollabConfig:
    listen_host: str
    listen_port: int
    cert: Path
    key: Path
    ca: Path
    asn: int
    name: str  # this instance's certificate CN (or DNS SAN)
    max_skew_s: float = DEFAULT_MAX_SKEW_S
    peers: tuple[CollabPeer, ...] = ()

    def peer(self, name: str) -> CollabPeer | None:
        return next((p for p in self.peers if p.name == name), None)


def _path(t: Table, key: str, base: Path) -> Path:
    text = t.get_str(key, required=True)
    if "\x00" in text:
        t.error(key, "a path cannot contain a NUL character")
        text = text.replace("\x00", "")
    p = Path(text).expanduser() if text.startswith("~/") else Path(text)
    return p if p.is_absolute() else base / p


def _listen(t: Table) -> tuple[str, int]:
    text = t.get_str("listen", required=True)
    if not text:
        return "", 0
    try:
        parts = urlsplit("//" + text)
        host, port = parts.hostname or "", parts.port
        if host and host != "localhost":
            ipaddress.ip_address(host)
    except ValueError:
        port = None
    if port is None or not 0 < port < 65536 or not host:
        t.error("listen", f"must be host:port or [IPv6]:port with an IP address, got {text!r}")
        return "", 0
    return host, port


def _peer(t: Table) -> CollabPeer | None:
    name = t.get_str("name", required=True)
    asn = t.get_int("asn", required=True, lo=1, hi=MAX_ASN)
    url = t.get_str("url", required=True)
    if url:
        try:
            parts = urlsplit(url)
            ok = parts.scheme == "https" and bool(parts.hostname) and parts.port is not None \
                and parts.path in ("", "/")
        except ValueError:
            ok = False
        if not ok:
            t.error("url", f"must be https://host:port, got {url!r}")
    modes = _modes(t)
    duration = t.get_float("duration_s", 86400.0, lo=1.0)
    send_every = t.get_float("send_every_s", 300.0, lo=1.0)
    initiate = t.get_bool("initiate", False)
    if not (name and asn and url):
        return None
    return CollabPeer(name, asn, url.rstrip("/"), initiate, modes, duration, send_every)


def _modes(t: Table) -> tuple[str, ...]:
    value = t.data.get("modes", list(MODES))
    t.used.add("modes")
    if not isinstance(value, list) or not value or not all(v in MODES for v in value):
        t.error("modes", f"must be a non-empty list of {', '.join(MODES)}, got {value!r}")
        return MODES
    return tuple(dict.fromkeys(value))


def read_collab(t: Table, base: Path) -> CollabConfig | None:
    """[collaboration] (None when the table is absent: no collaboration); paths relative to `base`."""
    if not t.data:
        return None
    host, port = _listen(t)
    cert, key, ca = _path(t, "cert", base), _path(t, "key", base), _path(t, "ca", base)
    asn = t.get_int("asn", required=True, lo=1, hi=MAX_ASN)
    name = t.get_str("name", required=True)
    skew = t.get_float("max_skew_s", DEFAULT_MAX_SKEW_S, lo=1.0)
    tables = t.tables("peer")
    peers = read_each(tables, _peer)
    seen: set[str] = set()
    for pt in tables:
        peer_name = pt.data.get("name")
        if peer_name in seen or (name and peer_name == name):
            pt.error("name", f"duplicate peer name {peer_name!r} (or this instance's own name)")
        if isinstance(peer_name, str):
            seen.add(peer_name)
    return CollabConfig(host, port, cert, key, ca, asn, name, skew, peers)
