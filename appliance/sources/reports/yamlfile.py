"""The declarative report file (YAML; TOML with the same structure): subnets, prefixes, router roles.

    routers:                         # optional: role (border|access|core), capability (savnet|legacy)
      r1: {role: access, capability: savnet}
    subnets:
      - id: "10"                     # subnet ID (string or integer)
        flags: [multihomed]          # optional: anycast, special, multihomed (for every prefix below)
        prefixes: [198.18.10.0/24, 2001:db8:10::/48]
        attachments:                 # where the subnet is attached
          - {router: r1, interface: eth2}
          - {router: r2, interface: eth3}
    prefixes:                        # optional flat form, one report each
      - {router: r3, interface: eth2, prefix: 198.18.30.0/24, subnet: "30", flags: [anycast]}

Every problem is collected with its field path (`subnets[0].prefixes[1]`) into one ReportError.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from appliance.model import Capability, PrefixFlags, PrefixReport, Role, canonical_prefix
from appliance.sources.reports.errors import ReportError
from appliance.sources.reports.records import RouterReport, Source, flags_from_names


def load_report_file(path: Path) -> tuple[list[PrefixReport], list[RouterReport]]:
    """YAML, or TOML when the name ends in .toml (same schema: [routers.r1], [[subnets]], [[prefixes]])."""
    try:
        text = path.read_text()
        doc = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except OSError as exc:
        raise ReportError([f"{path}: cannot read: {exc.strerror}"]) from exc
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ReportError(
            [f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {exc}"]
        ) from exc
    return parse_report_doc(doc if doc is not None else {}, str(path))


def parse_report_doc(doc: Any, where: str = "reports") -> tuple[list[PrefixReport], list[RouterReport]]:
    problems: list[str] = []
    prefixes: list[PrefixReport] = []
    routers: list[RouterReport] = []
    if not isinstance(doc, Mapping):
        raise ReportError([f"{where}: top level must be a mapping (routers, subnets, prefixes)"])
    for key in sorted(set(doc) - {"routers", "subnets", "prefixes"}):
        problems.append(f"{where}: {key}: unknown section")
    for name, entry in _mapping(doc.get("routers", {}), f"{where}: routers", problems).items():
        routers.extend(_router(str(name), entry, f"{where}: routers.{name}", problems))
    for i, subnet in enumerate(_list(doc.get("subnets", []), f"{where}: subnets", problems)):
        prefixes.extend(_subnet(subnet, f"{where}: subnets[{i}]", problems))
    for i, flat in enumerate(_list(doc.get("prefixes", []), f"{where}: prefixes", problems)):
        prefixes.extend(_flat(flat, f"{where}: prefixes[{i}]", problems))
    if problems:
        raise ReportError(problems)
    return prefixes, routers


def _mapping(value: Any, where: str, problems: list[str]) -> Mapping[Any, Any]:
    if isinstance(value, Mapping):
        return value
    problems.append(f"{where}: must be a mapping")
    return {}


def _list(value: Any, where: str, problems: list[str]) -> list[Any]:
    if isinstance(value, list):
        return value
    problems.append(f"{where}: must be a list")
    return []


def _router(name: str, entry: Any, where: str, problems: list[str]) -> list[RouterReport]:
    entry = _mapping(entry, where, problems)
    role = cap = None
    try:
        role = Role(entry["role"]) if "role" in entry else None
    except ValueError:
        problems.append(f"{where}.role: {entry['role']!r} is not one of {', '.join(r.value for r in Role)}")
    try:
        cap = Capability(entry["capability"]) if "capability" in entry else None
    except ValueError:
        problems.append(
            f"{where}.capability: {entry['capability']!r} is not one of "
            f"{', '.join(c.value for c in Capability)}"
        )
    for key in sorted(set(entry) - {"role", "capability"}):
        problems.append(f"{where}.{key}: unknown key")
    return [RouterReport(name, role, cap, str(Source.FILE))]


def _flags(value: Any, where: str, problems: list[str]) -> PrefixFlags:
    try:
        return flags_from_names([str(v) for v in _list(value, where, problems)])
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return PrefixFlags()


def _prefix(value: Any, where: str, problems: list[str]) -> str | None:
    try:
        return canonical_prefix(str(value))
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return None


def _required_str(entry: Mapping[Any, Any], key: str, where: str, problems: list[str]) -> str:
    value = entry.get(key)
    if value is None or str(value).strip() == "":
        problems.append(f"{where}.{key}: required")
        return ""
    return str(value)


def _subnet(subnet: Any, where: str, problems: list[str]) -> list[PrefixReport]:
    entry = _mapping(subnet, where, problems)
    sid = _required_str(entry, "id", where, problems)
    flags = _flags(entry.get("flags", []), f"{where}.flags", problems)
    pfx = [
        _prefix(p, f"{where}.prefixes[{i}]", problems)
        for i, p in enumerate(_list(entry.get("prefixes", []), f"{where}.prefixes", problems))
    ]
    out: list[PrefixReport] = []
    for j, att in enumerate(_list(entry.get("attachments", []), f"{where}.attachments", problems)):
        a = _mapping(att, f"{where}.attachments[{j}]", problems)
        router = _required_str(a, "router", f"{where}.attachments[{j}]", problems)
        itf = str(a.get("interface", ""))
        out.extend(PrefixReport(router, itf, p, sid, flags, str(Source.FILE)) for p in pfx if p)
    for key in sorted(set(entry) - {"id", "flags", "prefixes", "attachments"}):
        problems.append(f"{where}.{key}: unknown key")
    return out


def _flat(flat: Any, where: str, problems: list[str]) -> list[PrefixReport]:
    entry = _mapping(flat, where, problems)
    router = _required_str(entry, "router", where, problems)
    prefix = _prefix(entry.get("prefix"), f"{where}.prefix", problems)
    flags = _flags(entry.get("flags", []), f"{where}.flags", problems)
    for key in sorted(set(entry) - {"router", "interface", "prefix", "subnet", "flags"}):
        problems.append(f"{where}.{key}: unknown key")
    if not prefix or not router:
        return []
    return [
        PrefixReport(
            router,
            str(entry.get("interface", "")),
            prefix,
            str(entry.get("subnet", "")),
            flags,
            str(Source.FILE),
        )
    ]
