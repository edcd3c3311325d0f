"""Reader for containerlab topology files (`<lab>.clab.yml`), the subset savd's labs use.

Owns: turning the YAML into frozen `Topology`/`Node`/`LabLink` values with every inherited setting
resolved, and rejecting what the namespace runner cannot honour with a `TopologyError` naming the
file and the dotted field (`topology.nodes.r1.binds[0]`). It must not touch the network.

Schema (containerlab's, srl-labs/containerlab docs "topology definition" and "nodes"):
- `name` (required), `prefix` and `mgmt` (accepted, unused without Docker).
- `topology.defaults`, `topology.kinds.<kind>`, `topology.groups.<group>` and `topology.nodes.<node>` hold
  node settings. Precedence: node > group > kind > defaults for scalars (`kind`, `image`, ...); maps
  (`env`, `sysctls`, `labels`) merge with the same precedence; lists concatenate in that order (`exec`),
  and for `binds` a later bind of the same container path replaces the earlier one.
- Only `kind: linux` nodes (FRR runs in them from bound `/etc/frr/daemons` and `/etc/frr/frr.conf`).
- `binds`: docker `-v` syntax `host:container[:ro|rw]`, host paths relative to the topology file.
- `links`: short form `endpoints: ["r1:eth1", "r2:eth1"]` or long form `type: veth` with
  `endpoints: [{node: r1, interface: eth1}, ...]`; optional `mtu`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from appliance.lab.errors import TopologyError

FRR_DAEMONS_PATH = "/etc/frr/daemons"
FRR_CONF_PATH = "/etc/frr/frr.conf"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
SUPPORTED_KINDS = frozenset({"linux"})
# containerlab node fields that have no meaning without Docker: accepted and ignored.
_IGNORED_NODE_FIELDS = frozenset(
    {
        "image-pull-policy",
        "restart-policy",
        "ports",
        "user",
        "cmd",
        "entrypoint",
        "cap-add",
        "network-mode",
        "mgmt-ipv4",
        "mgmt-ipv6",
        "mgmt-ipv4-address",
        "mgmt-ipv6-address",
        "publish",
        "memory",
        "cpu",
        "cpu-set",
        "shm-size",
        "devices",
        "dns",
        "extras",
        "aliases",
        "certificate",
        "healthcheck",
        "runtime",
        "stages",
        "wait-for",
        "auto-remove",
        "startup-delay",
        "enforce-startup-config",
        "suppress-startup-config",
        "startup-config",
        "license",
        "type",
        "components",
        "config",
        "extra-hosts",
    }
)
_NODE_FIELDS = (
    frozenset({"kind", "image", "binds", "exec", "env", "sysctls", "labels", "group"}) | _IGNORED_NODE_FIELDS
)
_TOP_FIELDS = frozenset({"name", "prefix", "mgmt", "topology", "settings"})
_TOPOLOGY_FIELDS = frozenset({"defaults", "kinds", "groups", "nodes", "links"})


@dataclass(frozen=True, slots=True)
class Bind:
    """One bind mount: `host` is resolved against the topology file's folder."""

    host: Path
    container: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class Node:
    """A node with every inherited setting resolved."""

    name: str
    kind: str
    image: str = ""
    group: str = ""
    binds: tuple[Bind, ...] = ()
    exec: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()  # containerlab labels; `savd lab init` reads `savd.*`

    def label(self, key: str) -> str | None:
        """The value of label `key` (merged over defaults, kind, group and node), if set."""
        return dict(self.labels).get(key)

    def bind_for(self, container_path: str) -> Path | None:
        """Host path bound at `container_path`, if any."""
        for bind in self.binds:
            if bind.container == container_path:
                return bind.host
        return None

    @property
    def is_frr(self) -> bool:
        """A router: it binds FRR's daemons file or frr.conf (hosts have no FRR binds)."""
        return self.bind_for(FRR_DAEMONS_PATH) is not None or self.bind_for(FRR_CONF_PATH) is not None

    def host_path(self, container_path: str) -> Path | None:
        """Map a path inside the node to the host, through the binds (files or folders)."""
        target = PurePosixPath(container_path)
        for bind in sorted(self.binds, key=lambda b: -len(b.container)):
            base = PurePosixPath(bind.container)
            if target == base:
                return bind.host
            if base in target.parents:
                return bind.host / target.relative_to(base)
        return None


@dataclass(frozen=True, slots=True)
class Endpoint:
    node: str
    interface: str

    def __str__(self) -> str:
        return f"{self.node}:{self.interface}"


@dataclass(frozen=True, slots=True)
class LabLink:
    """A point-to-point veth pair between two node interfaces."""

    a: Endpoint
    b: Endpoint
    mtu: int | None = None


@dataclass(frozen=True, slots=True)
class Topology:
    name: str
    path: Path
    nodes: tuple[Node, ...]
    links: tuple[LabLink, ...] = field(default=())

    @property
    def directory(self) -> Path:
        return self.path.parent

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise TopologyError(
            f"no node {name!r} (nodes: {', '.join(n.name for n in self.nodes)})", path=self.path, node=name
        )


def load_topology(path: str | Path, *, check_files: bool = True) -> Topology:
    """Read and validate a topology file; with `check_files`, every bound host file must exist."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyError(f"cannot read topology file: {exc.strerror}", path=path) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TopologyError(f"not valid YAML: {exc}", path=path) from exc
    topo = parse_topology(data, path)
    if check_files:
        check_bind_files(topo)
    return topo


def check_bind_files(topo: Topology) -> None:
    """Every bind's host side must exist: a missing file is an error naming the node and the bind."""
    for node in topo.nodes:
        for i, bind in enumerate(node.binds):
            if not bind.host.exists():
                raise TopologyError(
                    f"node {node.name}: bound file {bind.host} (for {bind.container}) does not exist",
                    path=topo.path,
                    field=f"topology.nodes.{node.name}.binds[{i}]",
                    node=node.name,
                )


def parse_topology(data: Any, path: Path) -> Topology:
    """Validate the decoded YAML document `data` read from `path` (pure apart from path arithmetic)."""
    doc = _mapping(data, path, "(document)")
    _no_unknown(doc, _TOP_FIELDS, path, "")
    name = doc.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise TopologyError("must be a name of letters, digits, '-', '_' or '.'", path=path, field="name")
    topo = _mapping(doc.get("topology"), path, "topology")
    _no_unknown(topo, _TOPOLOGY_FIELDS, path, "topology")
    defaults = _mapping(topo.get("defaults", {}), path, "topology.defaults")
    kinds = _mapping(topo.get("kinds", {}), path, "topology.kinds")
    groups = _mapping(topo.get("groups", {}), path, "topology.groups")
    raw_nodes = _mapping(topo.get("nodes"), path, "topology.nodes")
    if not raw_nodes:
        raise TopologyError("at least one node is needed", path=path, field="topology.nodes")
    nodes = tuple(_resolve_node(str(n), raw, defaults, kinds, groups, path) for n, raw in raw_nodes.items())
    names = {n.name for n in nodes}
    raw_links = topo.get("links", []) or []
    if not isinstance(raw_links, list):
        raise TopologyError("must be a list", path=path, field="topology.links")
    links = tuple(_parse_link(raw, i, names, path) for i, raw in enumerate(raw_links))
    _check_unique_interfaces(links, path)
    return Topology(name=name, path=path, nodes=nodes, links=links)


def _mapping(value: Any, path: Path, where: str) -> Mapping[str, Any]:
    if value is None and where != "topology" and where != "topology.nodes":
        return {}
    if not isinstance(value, Mapping):
        raise TopologyError(f"must be a mapping, got {type(value).__name__}", path=path, field=where)
    return value


def _no_unknown(raw: Mapping[str, Any], known: frozenset[str], path: Path, where: str) -> None:
    for key in raw:
        if key not in known:
            dotted = f"{where}.{key}" if where else str(key)
            raise TopologyError(f"unknown field (known: {', '.join(sorted(known))})", path=path, field=dotted)


def _resolve_node(
    name: str,
    raw: Any,
    defaults: Mapping[str, Any],
    kinds: Mapping[str, Any],
    groups: Mapping[str, Any],
    path: Path,
) -> Node:
    where = f"topology.nodes.{name}"
    if not _NAME_RE.match(name):
        raise TopologyError(
            "node names are letters, digits, '-', '_' or '.'", path=path, field=where, node=name
        )
    node_raw = _mapping(raw, path, where)
    group = str(node_raw.get("group", "") or "")
    if group and group not in groups:
        raise TopologyError(f"unknown group {group!r}", path=path, field=f"{where}.group", node=name)
    group_raw = _mapping(groups.get(group, {}), path, f"topology.groups.{group}") if group else {}
    kind = node_raw.get("kind") or group_raw.get("kind") or defaults.get("kind")
    if not kind:
        raise TopologyError(
            "no kind (set it on the node, its group or topology.defaults)",
            path=path,
            field=f"{where}.kind",
            node=name,
        )
    if kind not in SUPPORTED_KINDS:
        raise TopologyError(
            f"kind {kind!r} is not supported without Docker (only: linux)",
            path=path,
            field=f"{where}.kind",
            node=name,
        )
    kind_raw = _mapping(kinds.get(kind, {}), path, f"topology.kinds.{kind}")
    layers = [
        ("topology.defaults", defaults),
        (f"topology.kinds.{kind}", kind_raw),
        (f"topology.groups.{group}", group_raw),
        (where, node_raw),
    ]
    for lwhere, layer in layers:
        _no_unknown(layer, _NODE_FIELDS, path, lwhere)
    image = ""
    binds: dict[str, Bind] = {}
    execs: list[str] = []
    env: dict[str, str] = {}
    sysctls: dict[str, str] = {}
    labels: dict[str, str] = {}
    for lwhere, layer in layers:
        image = str(layer.get("image", image) or image)
        for i, spec in enumerate(_list(layer.get("binds"), path, f"{lwhere}.binds", name)):
            bind = _parse_bind(spec, path, f"{lwhere}.binds[{i}]", name)
            binds[bind.container] = bind
        for i, line in enumerate(_list(layer.get("exec"), path, f"{lwhere}.exec", name)):
            if not isinstance(line, str) or not line.strip():
                raise TopologyError(
                    "exec lines are non-empty strings", path=path, field=f"{lwhere}.exec[{i}]", node=name
                )
            execs.append(line)
        env.update(_str_map(layer.get("env"), path, f"{lwhere}.env", name))
        sysctls.update(_str_map(layer.get("sysctls"), path, f"{lwhere}.sysctls", name))
        labels.update(_str_map(layer.get("labels"), path, f"{lwhere}.labels", name))
    return Node(
        name=name,
        kind=str(kind),
        image=image,
        group=group,
        binds=tuple(binds.values()),
        exec=tuple(execs),
        env=tuple(sorted(env.items())),
        sysctls=tuple(sorted(sysctls.items())),
        labels=tuple(sorted(labels.items())),
    )


def _list(value: Any, path: Path, where: str, node: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TopologyError("must be a list", path=path, field=where, node=node)
    return value


def _str_map(value: Any, path: Path, where: str, node: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TopologyError("must be a mapping", path=path, field=where, node=node)
    out: dict[str, str] = {}
    for key, val in value.items():
        if isinstance(val, bool):
            val = int(val)
        if not isinstance(val, str | int | float):
            raise TopologyError(
                "values must be strings or numbers", path=path, field=f"{where}.{key}", node=node
            )
        out[str(key)] = str(val)
    return out


def _parse_bind(spec: Any, path: Path, where: str, node: str) -> Bind:
    if not isinstance(spec, str):
        raise TopologyError("a bind is a string 'host:container[:ro]'", path=path, field=where, node=node)
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise TopologyError(
            f"bind {spec!r} is not 'host:container[:ro|rw]'", path=path, field=where, node=node
        )
    if not parts[1].startswith("/"):
        raise TopologyError(
            f"container path {parts[1]!r} must be absolute", path=path, field=where, node=node
        )
    opts = parts[2].split(",") if len(parts) == 3 else []
    host = Path(parts[0]).expanduser()
    if not host.is_absolute():
        host = path.parent / host
    return Bind(host=host.resolve(), container=str(PurePosixPath(parts[1])), read_only="ro" in opts)


def _parse_endpoint(raw: Any, names: set[str], path: Path, where: str) -> Endpoint:
    if isinstance(raw, str):
        node, sep, iface = raw.partition(":")
        if not sep:
            raise TopologyError(f"endpoint {raw!r} is not 'node:interface'", path=path, field=where)
    elif isinstance(raw, Mapping):
        node, iface = str(raw.get("node", "")), str(raw.get("interface", ""))
    else:
        raise TopologyError("an endpoint is 'node:interface' or {node, interface}", path=path, field=where)
    if node in ("host", "macvlan", "mgmt-net", "ovs-bridge", "bridge"):
        raise TopologyError(
            f"endpoint {node}:{iface}: only node-to-node veth links are supported", path=path, field=where
        )
    if node not in names:
        raise TopologyError(f"endpoint names unknown node {node!r}", path=path, field=where)
    if not _IFNAME_RE.match(iface) or iface == "lo":
        raise TopologyError(
            f"interface name {iface!r} must be 1-15 of [A-Za-z0-9_.-] and not lo",
            path=path,
            field=where,
            node=node,
        )
    return Endpoint(node, iface)


def _parse_link(raw: Any, index: int, names: set[str], path: Path) -> LabLink:
    where = f"topology.links[{index}]"
    link = _mapping(raw, path, where)
    _no_unknown(link, frozenset({"endpoints", "type", "mtu", "labels", "vars"}), path, where)
    kind = link.get("type", "veth")
    if kind != "veth":
        raise TopologyError(
            f"link type {kind!r} is not supported (only veth)", path=path, field=f"{where}.type"
        )
    eps = link.get("endpoints")
    if not isinstance(eps, list) or len(eps) != 2:
        raise TopologyError("needs exactly two endpoints", path=path, field=f"{where}.endpoints")
    a = _parse_endpoint(eps[0], names, path, f"{where}.endpoints[0]")
    b = _parse_endpoint(eps[1], names, path, f"{where}.endpoints[1]")
    if a.node == b.node:
        raise TopologyError("both ends on one node", path=path, field=f"{where}.endpoints", node=a.node)
    mtu = link.get("mtu")
    if mtu is not None and (not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535):
        raise TopologyError("mtu must be an integer 68..65535", path=path, field=f"{where}.mtu")
    return LabLink(a=a, b=b, mtu=mtu)


def _check_unique_interfaces(links: tuple[LabLink, ...], path: Path) -> None:
    seen: dict[Endpoint, int] = {}
    for i, link in enumerate(links):
        for j, ep in enumerate((link.a, link.b)):
            if ep in seen:
                raise TopologyError(
                    f"interface {ep} already used by topology.links[{seen[ep]}]",
                    path=path,
                    field=f"topology.links[{i}].endpoints[{j}]",
                    node=ep.node,
                )
            seen[ep] = i
