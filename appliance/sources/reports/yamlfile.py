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

Every problem is collected with its field path (`subnets[0].prefixes[1]`) into one ReportError, and
every failure to load is one (not UTF-8, not YAML, nested too deeply, too big): the caller alarms and keeps
the last good facts. Types are checked, not coerced: YAML reads `router: yes` as True and `id: 1.0` as a
float; those are errors, never the router "True" or the subnet "1.0". Names follow appliance.names; an
`interface` key, when present, must name an interface (omit it for a router-level report). Sizes are
bounded (file bytes, reports, problems listed) because aliases let a small file describe a huge one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from appliance.model import Capability, PrefixFlags, PrefixReport, Role, canonical_prefix
from appliance.names import interface_name_problem, router_name_problem, subnet_id_problem
from appliance.sources.reports.errors import ReportError
from appliance.sources.reports.records import FLAG_NAMES, RouterReport, Source

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_REPORTS = 200_000
MAX_PROBLEMS = 50

E = TypeVar("E", Role, Capability)


def load_report_file(path: Path) -> tuple[list[PrefixReport], list[RouterReport]]:
    """YAML, or TOML when the name ends in .toml (same schema: [routers.r1], [[subnets]], [[prefixes]]).

    Raises ReportError, and only ReportError, naming the file (and the field where there is one)."""
    kind = "TOML" if path.suffix == ".toml" else "YAML"
    text = _read_text(path)
    try:
        doc = tomllib.loads(text) if kind == "TOML" else yaml.safe_load(text)
    except RecursionError:
        raise ReportError([f"{path}: nested too deeply to be a reports file"]) from None
    except (yaml.YAMLError, tomllib.TOMLDecodeError, ValueError, OverflowError) as exc:
        raise ReportError([f"{path}: not valid {kind}: {_short(str(exc))}"]) from exc
    return parse_report_doc(doc if doc is not None else {}, str(path))


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ReportError([f"{path}: {size} bytes, more than a reports file may hold ({MAX_FILE_BYTES})"])
        raw = path.read_bytes()
    except OSError as exc:
        raise ReportError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ReportError(
            [f"{path}: line {line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"]
        ) from None


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_report_doc(doc: Any, where: str = "reports") -> tuple[list[PrefixReport], list[RouterReport]]:
    reader = _Reader(where)
    prefixes, routers = reader.document(doc)
    if reader.problems:
        shown = reader.problems[:MAX_PROBLEMS]
        more = len(reader.problems) - len(shown)
        raise ReportError(shown + ([f"{where}: ... and {more} more problems"] if more else []))
    return prefixes, routers


class _Reader:
    """One pass over a parsed document: facts out, every problem (with its field path) collected."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.problems: list[str] = []
        self.reports = 0

    def problem(self, field: str, message: str) -> None:
        self.problems.append(f"{self.where}: {field}: {message}")

    def document(self, doc: Any) -> tuple[list[PrefixReport], list[RouterReport]]:
        prefixes: list[PrefixReport] = []
        routers: list[RouterReport] = []
        if not isinstance(doc, Mapping):
            self.problems.append(f"{self.where}: top level must be a mapping (routers, subnets, prefixes)")
            return prefixes, routers
        self.unknown_keys(doc, ("routers", "subnets", "prefixes"), "", "unknown section")
        for name, entry in self.mapping(doc.get("routers", {}), "routers").items():
            routers.extend(self.router(name, entry))
        for i, subnet in enumerate(self.seq(doc.get("subnets", []), "subnets")):
            prefixes.extend(self.subnet(subnet, f"subnets[{i}]"))
        for i, flat in enumerate(self.seq(doc.get("prefixes", []), "prefixes")):
            prefixes.extend(self.flat(flat, f"prefixes[{i}]"))
        return prefixes, routers

    # --- shapes -------------------------------------------------------------------------------------

    def mapping(self, value: Any, field: str) -> Mapping[Any, Any]:
        if isinstance(value, Mapping):
            return value
        self.problem(field, f"must be a mapping, got {_kind(value)}")
        return {}

    def seq(self, value: Any, field: str) -> list[Any]:
        if isinstance(value, list):
            return value
        self.problem(field, f"must be a list, got {_kind(value)}")
        return []

    def unknown_keys(self, entry: Mapping[Any, Any], known: tuple[str, ...], field: str, what: str) -> None:
        """Keys of any type (YAML allows 1, true, null as keys), named without sorting mixed types."""
        for key in sorted(str(k) if isinstance(k, str) else repr(k) for k in entry if k not in known):
            self.problem(f"{field}.{key}" if field else key, what)

    # --- values -------------------------------------------------------------------------------------

    def router_name(self, value: Any, field: str) -> str | None:
        problem = router_name_problem(value)
        if problem is not None:
            self.problem(field, problem)
            return None
        return str(value)

    def interface(self, entry: Mapping[Any, Any], field: str) -> str | None:
        """Absent: "" (router-level report). Present: a valid interface name, never null or empty."""
        if "interface" not in entry:
            return ""
        problem = interface_name_problem(entry["interface"])
        if problem is not None:
            self.problem(f"{field}.interface", problem + " (omit the key for a router-level report)")
            return None
        return str(entry["interface"])

    def subnet_id(self, value: Any, field: str) -> str | None:
        problem = subnet_id_problem(value)
        if problem is not None:
            self.problem(field, problem)
            return None
        return str(value)

    def prefix(self, value: Any, field: str) -> str | None:
        try:
            return canonical_prefix(value)
        except ValueError as exc:
            self.problem(field, str(exc))
            return None

    def flags(self, value: Any, field: str) -> PrefixFlags:
        names = []
        for i, name in enumerate(self.seq(value, field)):
            if isinstance(name, str) and name in FLAG_NAMES:
                names.append(name)
            else:
                self.problem(field, f"unknown flag {_kind(name)} (item {i}); known: {', '.join(FLAG_NAMES)}")
        return PrefixFlags(*(n in names for n in FLAG_NAMES))

    def room_for(self, count: int, field: str) -> bool:
        """Bounds the facts one file yields: aliases can multiply attachments by prefixes."""
        if self.reports + count > MAX_REPORTS:
            self.problem(field, f"more than {MAX_REPORTS} reports in one file")
            return False
        self.reports += count
        return True

    # --- entries ------------------------------------------------------------------------------------

    def router(self, name: Any, entry: Any) -> list[RouterReport]:
        field = f"routers.{name}" if isinstance(name, str) else f"routers.{name!r}"
        router = self.router_name(name, field)
        entry = self.mapping(entry, field)
        role = self.choice(entry, "role", Role, field)
        cap = self.choice(entry, "capability", Capability, field)
        self.unknown_keys(entry, ("role", "capability"), field, "unknown key")
        return [RouterReport(router, role, cap, str(Source.FILE))] if router else []

    def choice(self, entry: Mapping[Any, Any], key: str, enum: type[E], field: str) -> E | None:
        if key not in entry:
            return None
        value = entry[key]
        try:
            return enum(value) if isinstance(value, str) else enum("\0")
        except ValueError:
            self.problem(f"{field}.{key}", f"{_kind(value)} is not one of {', '.join(e.value for e in enum)}")
            return None

    def subnet(self, subnet: Any, field: str) -> list[PrefixReport]:
        entry = self.mapping(subnet, field)
        sid = self.subnet_id(entry["id"], f"{field}.id") if "id" in entry else None
        if "id" not in entry:
            self.problem(f"{field}.id", "required")
        flags = self.flags(entry.get("flags", []), f"{field}.flags")
        values = self.seq(entry.get("prefixes", []), f"{field}.prefixes")
        pfx = [self.prefix(p, f"{field}.prefixes[{i}]") for i, p in enumerate(values)]
        where: list[tuple[str, str]] = []
        for j, att in enumerate(self.seq(entry.get("attachments", []), f"{field}.attachments")):
            a = self.mapping(att, f"{field}.attachments[{j}]")
            self.unknown_keys(a, ("router", "interface"), f"{field}.attachments[{j}]", "unknown key")
            router = self.required_router(a, f"{field}.attachments[{j}]")
            itf = self.interface(a, f"{field}.attachments[{j}]")
            if router is not None and itf is not None:
                where.append((router, itf))
        self.unknown_keys(entry, ("id", "flags", "prefixes", "attachments"), field, "unknown key")
        good = [p for p in pfx if p]
        if sid is None or not self.room_for(len(good) * len(where), field):
            return []
        return [PrefixReport(r, i, p, sid, flags, str(Source.FILE)) for r, i in where for p in good]

    def required_router(self, entry: Mapping[Any, Any], field: str) -> str | None:
        if "router" not in entry:
            self.problem(f"{field}.router", "required")
            return None
        return self.router_name(entry["router"], f"{field}.router")

    def flat(self, flat: Any, field: str) -> list[PrefixReport]:
        entry = self.mapping(flat, field)
        router = self.required_router(entry, field)
        itf = self.interface(entry, field)
        if "prefix" not in entry:
            self.problem(f"{field}.prefix", "required")
        prefix = self.prefix(entry["prefix"], f"{field}.prefix") if "prefix" in entry else None
        sid = self.subnet_id(entry["subnet"], f"{field}.subnet") if "subnet" in entry else ""
        flags = self.flags(entry.get("flags", []), f"{field}.flags")
        self.unknown_keys(entry, ("router", "interface", "prefix", "subnet", "flags"), field, "unknown key")
        if router is None or itf is None or prefix is None or sid is None or not self.room_for(1, field):
            return []
        return [PrefixReport(router, itf, prefix, sid, flags, str(Source.FILE))]


def _kind(value: Any) -> str:
    """A value for a message, never rendering a large structure."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 70 else repr(value[:67] + "...")
    if isinstance(value, bool | int | float) or value is None:
        return repr(value)
    return f"a {type(value).__name__}"
