"""Read engine inputs from files: a snapshot (YAML or JSON), a scenario, CAIDA as-rel files (.bz2 or text).

This is the engine's only edge with the file system; everything it returns is validated, canonical and
frozen. A bad file raises `SnapshotError` naming the file and the field path (`paths[3].as_path`), never a
traceback from deep inside the engine.

Snapshot file layout (every section optional):

    routers:    [{name, asn, role: border|access|core, capability: savnet|legacy, router_id}]
    interfaces: [{router, name, external, addresses}]
    links:      [{local, remote, local_address, remote_address, metric}]
    reports:    [{router, interface, prefix, subnet, anycast, special, multihomed, source}]
    neighbors:  [{router, interface, asn, relationship}]   # relationship may come from as_relationships
    paths:      [{router, interface, prefix, as_path: [neighbour .. origin], path_id}]
    vrps:       [{prefix, max_length, asn}]
    aspas:      [{customer, providers: [..]}]
    as_relationships: FILE             # CAIDA as-rel, relative to the snapshot file
    rpki_ready: true|false
    policy: {default_algorithm, mode, rate, redirect,
             routers: {R: {mode, rate, redirect}},
             interfaces: {R: {I: {algorithm, mode, rate, redirect, prefix_acl, asn_acl}}}}
"""

from __future__ import annotations

import bz2
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from appliance.engine.policy import Algorithm, Policy
from appliance.engine.relationships import AsRelationships, AsRelError, parse_as_rel
from appliance.engine.scenarios import Scenario
from appliance.engine.snapshot import Snapshot
from appliance.errors import InputError
from appliance.model import (
    Action,
    Aspa,
    BgpPath,
    Capability,
    Interface,
    Link,
    Mode,
    Neighbor,
    PrefixFlags,
    PrefixReport,
    Relationship,
    Role,
    Router,
    Vrp,
    canonical_prefix,
)

__all__ = ["SnapshotError", "load_as_rel", "load_scenario", "load_snapshot", "parse_snapshot", "read_data"]

T = TypeVar("T")


class SnapshotError(InputError, ValueError):
    """A snapshot or scenario file that cannot be used; `where` is "file: field.path"."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


def read_data(path: Path) -> Any:
    """YAML or JSON (by suffix) from `path`, errors naming the file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise SnapshotError(str(path), f"cannot read: {exc.strerror}") from exc
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise SnapshotError(str(path), f"not valid {kind}: {exc}") from exc


def load_as_rel(path: Path) -> AsRelationships:
    opener: Callable[..., Any] = bz2.open if path.suffix == ".bz2" else open
    try:
        with opener(path, "rt") as fh:
            return parse_as_rel(fh, str(path))
    except OSError as exc:
        raise SnapshotError(str(path), f"cannot read: {exc}") from exc
    except AsRelError as exc:
        raise SnapshotError(str(path), str(exc)) from exc


def load_scenario(path: Path) -> Scenario:
    """A scenario file (format: scenarios.py); unknown keys raise ScenarioError naming the file and key."""
    data = read_data(path)
    if not isinstance(data, Mapping):
        raise SnapshotError(str(path), "a scenario must be a mapping")
    return Scenario(str(data.get("id", path.stem)), data, str(path))


def load_snapshot(path: Path) -> Snapshot:
    return parse_snapshot(read_data(path), str(path), base=path.parent)


class _Reader:
    """Walks one file's data, converting records and naming the field path of any problem."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> SnapshotError:
        return SnapshotError(f"{self.source}: {where}", message)

    def records(
        self, data: Mapping[str, Any], key: str, make: Callable[[Mapping[str, Any], str], T]
    ) -> list[T]:
        items = data.get(key) or []
        if not isinstance(items, list):
            raise self.fail(key, "must be a list")
        out = []
        for k, item in enumerate(items):
            where = f"{key}[{k}]"
            if not isinstance(item, Mapping):
                raise self.fail(where, "must be a mapping")
            try:
                out.append(make(item, where))
            except SnapshotError:
                raise
            except KeyError as exc:
                raise self.fail(where, f"missing field {exc.args[0]!r}") from exc
            except (TypeError, ValueError) as exc:
                raise self.fail(where, str(exc)) from exc
        return out

    def prefix(self, item: Mapping[str, Any], where: str, key: str = "prefix") -> str:
        try:
            return canonical_prefix(str(item[key]))
        except ValueError as exc:
            raise self.fail(f"{where}.{key}", f"not a canonical prefix: {item[key]!r} ({exc})") from exc


_NO_ACTION = Action()


def _action(d: Mapping[str, Any], base: Action = _NO_ACTION) -> Action:
    return Action(
        Mode(d.get("mode", base.mode)), float(d.get("rate", base.rate)), str(d.get("redirect", base.redirect))
    )


def _policy(r: _Reader, d: Mapping[str, Any]) -> Policy:
    try:
        default = _action(d)
        routers = {str(k): _action(v, default) for k, v in (d.get("routers") or {}).items()}
        actions: dict[tuple[str, str], Action] = {}
        algos: dict[tuple[str, str], Algorithm] = {}
        pacl: dict[tuple[str, str], tuple[str, ...]] = {}
        aacl: dict[tuple[str, str], tuple[int, ...]] = {}
        for router, ifaces in (d.get("interfaces") or {}).items():
            for iface, v in (ifaces or {}).items():
                key = (str(router), str(iface))
                if {"mode", "rate", "redirect"} & set(v):
                    actions[key] = _action(v, routers.get(key[0], default))
                if "algorithm" in v:
                    algos[key] = Algorithm(v["algorithm"])
                if "prefix_acl" in v:
                    pacl[key] = tuple(canonical_prefix(p) for p in v["prefix_acl"])
                if "asn_acl" in v:
                    aacl[key] = tuple(int(a) for a in v["asn_acl"])
        return Policy(
            Algorithm(d.get("default_algorithm", "auto")), default, routers, actions, algos, pacl, aacl
        )
    except (TypeError, ValueError, AttributeError) as exc:
        raise r.fail("policy", str(exc)) from exc


def parse_snapshot(data: Any, source: str = "snapshot", base: Path | None = None) -> Snapshot:
    """A Snapshot from already-parsed YAML/JSON data (see the module docstring for the layout)."""
    r = _Reader(source)
    if not isinstance(data, Mapping):
        raise r.fail("(top)", "must be a mapping")
    rels: AsRelationships | None = None
    if data.get("as_relationships"):
        rel_path = Path(str(data["as_relationships"]))
        rels = load_as_rel(rel_path if rel_path.is_absolute() or base is None else base / rel_path)
    routers = r.records(data, "routers", lambda d, w: Router(
        str(d["name"]), str(d.get("router_id", "")), int(d.get("asn", 0)),
        Role(d.get("role", "core")), Capability(d.get("capability", "savnet")),
    ))
    asn_of = {x.name: x.asn for x in routers}

    def neighbor(d: Mapping[str, Any], where: str) -> Neighbor:
        rel_text = d.get("relationship")
        rel = Relationship(rel_text) if rel_text else None
        if rel is None and rels is not None:
            rel = rels.relationship(asn_of.get(str(d["router"]), 0), int(d["asn"]))
        if rel is None:
            raise r.fail(f"{where}.relationship", "missing and not found in as_relationships")
        return Neighbor(str(d["router"]), str(d["interface"]), int(d["asn"]), rel, str(d.get("address", "")))

    def path(d: Mapping[str, Any], where: str) -> BgpPath:
        as_path = d["as_path"]
        if not isinstance(as_path, list) or not as_path:
            raise r.fail(f"{where}.as_path", "must be a non-empty list of ASNs, neighbour first")
        return BgpPath(
            str(d["router"]), str(d["interface"]), r.prefix(d, where), tuple(int(a) for a in as_path),
            int(d.get("path_id", 0)),
        )

    def report(d: Mapping[str, Any], where: str) -> PrefixReport:
        flags = PrefixFlags(bool(d.get("anycast")), bool(d.get("special")), bool(d.get("multihomed")))
        return PrefixReport(
            str(d["router"]), str(d["interface"]), r.prefix(d, where), str(d.get("subnet", "")), flags,
            str(d.get("source", "file")),
        )

    def vrp(d: Mapping[str, Any], where: str) -> Vrp:
        prefix = r.prefix(d, where)
        max_length = int(d.get("max_length", prefix.rsplit("/", 1)[1]))
        return Vrp(prefix, max_length, int(d["asn"]))

    ready = data.get("rpki_ready")
    return Snapshot(
        routers=tuple(routers),
        interfaces=tuple(r.records(data, "interfaces", lambda d, w: Interface(
            str(d["router"]), str(d["name"]), tuple(str(a) for a in d.get("addresses", ())),
            bool(d.get("external", False)),
        ))),
        links=tuple(r.records(data, "links", lambda d, w: Link(
            str(d["local"]), str(d["remote"]), str(d.get("local_address", "")),
            str(d.get("remote_address", "")), int(d.get("metric", 0)),
        ))),
        reports=tuple(r.records(data, "reports", report)),
        neighbors=tuple(r.records(data, "neighbors", neighbor)),
        paths=tuple(r.records(data, "paths", path)),
        vrps=tuple(r.records(data, "vrps", vrp)),
        aspas=tuple(r.records(data, "aspas", lambda d, w: Aspa(
            int(d["customer"]), tuple(int(p) for p in d.get("providers", ())),
        ))),
        policy=_policy(r, data.get("policy") or {}),
        rpki_ready=None if ready is None else bool(ready),
    )
