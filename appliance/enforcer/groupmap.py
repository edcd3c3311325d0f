"""Interface-set group ID -> local interface names (draft-ietf-idr-flowspec-interfaceset: groups are
configured locally on each router; savd's compiler ships its mapping, appliance/flowspec/groups.py).

Accepted file formats (the file is re-read when it changes):
- JSON object: {"7": ["eth1", "eth2"], "9": "eth3"}
- JSON list, as the compiler's RouterFlowSpec.groups: [{"interface": "eth1", "group_id": 7}, ...]
  ("group" also accepted)
- text: one group per line, "7 eth1 eth2", "#" comments.
- savd's node file: {"groups": <either JSON form>, "redirects": {"65000:4711": "2001:db8::10"}}: beside
  the groups, the route targets of rt-redirect (RFC 8955 §7.4) this node maps to a next hop, as a router
  would map them to a VRF routing toward it (savd's IPv6 steering, engine/steering.py). Only this form
  carries redirects (`read_node_file`).
Command-line flags use "7=eth1,eth2". Errors name the file, line or entry; nothing is guessed.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from appliance.errors import InputError

__all__ = ["GroupMapError", "Redirects", "merge", "parse_flag", "parse_redirects", "parse_text", "read_file",
           "read_node_file"]

MAX_GROUP = 16383
_IFNAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")

GroupMap = dict[int, tuple[str, ...]]
Redirects = dict[str, str]    # route target "ADMIN:NN" -> next-hop address
_TARGET = re.compile(r"^(\d{1,10}|\d{1,3}(\.\d{1,3}){3}):\d{1,10}$")


class GroupMapError(InputError, ValueError):
    """A group mapping entry is malformed; `where` names the file and line/entry."""

    def __init__(self, message: str, *, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


def _group(value: Any, where: str) -> int:
    try:
        gid = int(value)
    except (TypeError, ValueError):
        raise GroupMapError(f"group id {value!r} is not an integer", where=where) from None
    if not 0 <= gid <= MAX_GROUP:
        raise GroupMapError(f"group id {gid} outside 0..{MAX_GROUP}", where=where)
    return gid


def _ifnames(values: Iterable[Any], where: str) -> tuple[str, ...]:
    out = []
    for v in values:
        if not isinstance(v, str) or not _IFNAME.match(v):
            raise GroupMapError(f"bad interface name {v!r}", where=where)
        out.append(v)
    return tuple(out)


def merge(*maps: Mapping[int, Iterable[str]]) -> GroupMap:
    out: dict[int, set[str]] = {}
    for m in maps:
        for gid, names in m.items():
            out.setdefault(gid, set()).update(names)
    return {gid: tuple(sorted(names)) for gid, names in sorted(out.items())}


def parse_flag(text: str) -> GroupMap:
    """"7=eth1,eth2" -> {7: ("eth1", "eth2")}."""
    gid, sep, names = text.partition("=")
    if not sep or not names:
        raise GroupMapError(f"expected GROUP=IFNAME[,IFNAME...], got {text!r}", where="--group")
    return {_group(gid.strip(), "--group"): _ifnames([n.strip() for n in names.split(",")], "--group")}


def _json(text: str, source: str) -> Any:
    """The decoded document of a JSON-form file, or None for the text form."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise GroupMapError(f"invalid JSON: {exc}", where=source) from exc


def parse_text(text: str, source: str = "<text>") -> GroupMap:
    return _groups(text, _json(text, source), source)


def _groups(text: str, doc: Any, source: str) -> GroupMap:
    if doc is not None:
        return _from_json(doc, source)
    out: list[GroupMap] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].split()
        if not body:
            continue
        where = f"{source}:{lineno}"
        if len(body) < 2:
            raise GroupMapError("expected 'GROUP IFNAME [IFNAME...]'", where=where)
        out.append({_group(body[0], where): _ifnames(body[1:], where)})
    return merge(*out)


def _from_json(doc: Any, source: str) -> GroupMap:
    if isinstance(doc, dict):
        doc = doc.get("groups", doc) if "groups" in doc else doc
    if isinstance(doc, dict):
        parts = []
        for key, names in doc.items():
            where = f"{source}[{key!r}]"
            names = [names] if isinstance(names, str) else names
            if not isinstance(names, list):
                raise GroupMapError("expected an interface name or a list of them", where=where)
            parts.append({_group(key, where): _ifnames(names, where)})
        return merge(*parts)
    if isinstance(doc, list):
        parts = []
        for i, entry in enumerate(doc):
            where = f"{source}[{i}]"
            if not isinstance(entry, dict) or "interface" not in entry:
                raise GroupMapError("expected {\"interface\": ..., \"group_id\": ...}", where=where)
            gid = entry.get("group_id", entry.get("group"))
            parts.append({_group(gid, where): _ifnames([entry["interface"]], where)})
        return merge(*parts)
    raise GroupMapError("expected a JSON object or list", where=source)


def parse_redirects(text: str, source: str = "<text>") -> Redirects:
    """The "redirects" of a node file (JSON object form); {} for every other form."""
    return _redirects(_json(text, source), source)


def _redirects(doc: Any, source: str) -> Redirects:
    raw = doc.get("redirects", {}) if isinstance(doc, dict) and "groups" in doc else {}
    if not isinstance(raw, dict):
        raise GroupMapError("expected an object of route target -> address", where=f"{source}[redirects]")
    out: Redirects = {}
    for target, address in raw.items():
        where = f"{source}[redirects][{target!r}]"
        if not isinstance(target, str) or not _TARGET.match(target):
            raise GroupMapError("route target is not ADMIN:NN (an AS number or IPv4 address)", where=where)
        try:
            out[target] = str(ipaddress.ip_address(address))
        except ValueError:
            raise GroupMapError(f"next hop {address!r} is not an IP address", where=where) from None
    return dict(sorted(out.items()))


def read_node_file(path: Path) -> tuple[GroupMap, Redirects]:
    """The groups and the redirects of a node file (one read and one decode: both from one version)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise GroupMapError(f"cannot read: {exc.strerror}", where=str(path)) from exc
    doc = _json(text, str(path))
    return _groups(text, doc, str(path)), _redirects(doc, str(path))


def read_file(path: Path) -> GroupMap:
    return read_node_file(path)[0]
