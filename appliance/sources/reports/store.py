"""The `savd report` store: reports added by command (and later the REST API), as JSON in the data dir.

One file, `<data_dir>/reports.json`, written atomically (temporary file + rename) under an flock so two
concurrent commands never lose each other's change. JSON rather than SQLite: a few thousand records,
human-readable, diffable. A damaged file is an error naming the file, never silently replaced.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.model import Capability, PrefixReport, Role, canonical_prefix
from appliance.names import check_interface_name, check_router_name, subnet_id_problem
from appliance.sources.reports.errors import ReportError
from appliance.sources.reports.records import RouterReport, Source, flag_names, flags_from_names

FILE_NAME = "reports.json"
FORMAT_VERSION = 1


def default_data_dir() -> Path:
    """/var/lib/savd when it exists or can be created (root), else ./var."""
    system = Path("/var/lib/savd")
    if system.is_dir() and os.access(system, os.W_OK):
        return system
    if os.geteuid() == 0 and os.access(system.parent, os.W_OK):
        return system
    return Path("var")


@dataclass
class ReportStore:
    data_dir: Path
    prefixes: list[PrefixReport] = field(default_factory=list)
    routers: list[RouterReport] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.data_dir / FILE_NAME

    @classmethod
    def load(cls, data_dir: Path) -> ReportStore:
        store = cls(data_dir)
        if store.path.exists():
            store._read()
        return store

    @contextlib.contextmanager
    def locked(self) -> Iterator[ReportStore]:
        """Read, let the caller change, write back; serialised across processes."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / (FILE_NAME + ".lock")).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.prefixes, self.routers = [], []
            if self.path.exists():
                self._read()
            yield self
            self._write()

    def add(self, report: PrefixReport) -> bool:
        """Add or replace the report for (router, interface, prefix); True when something changed.

        ValueError for a bad name, subnet ID or prefix (appliance.names, model.canonical_prefix)."""
        report = PrefixReport(
            check_router_name(report.router),
            _interface(report.interface),
            canonical_prefix(report.prefix),
            _subnet(report.subnet),
            report.flags,
            str(Source.API),
        )
        key = (report.router, report.interface, report.prefix)
        old = [r for r in self.prefixes if (r.router, r.interface, r.prefix) == key]
        if old == [report]:
            return False
        self.prefixes = [r for r in self.prefixes if (r.router, r.interface, r.prefix) != key] + [report]
        return True

    def delete(self, router: str, interface: str, prefix: str) -> bool:
        key = (router, interface, canonical_prefix(prefix))
        before = len(self.prefixes)
        self.prefixes = [r for r in self.prefixes if (r.router, r.interface, r.prefix) != key]
        return len(self.prefixes) != before

    def set_router(self, report: RouterReport) -> None:
        check_router_name(report.router)
        self.routers = [r for r in self.routers if r.router != report.router] + [
            RouterReport(report.router, report.role, report.capability, str(Source.API))
        ]

    def _read(self) -> None:
        try:
            doc = json.loads(self.path.read_text())
            if doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"unsupported version {doc.get('version')!r}")
            self.prefixes = [_prefix_from(d) for d in doc.get("prefixes", [])]
            self.routers = [
                RouterReport(
                    check_router_name(d["router"]),
                    Role(d["role"]) if d.get("role") else None,
                    Capability(d["capability"]) if d.get("capability") else None,
                    str(Source.API),
                )
                for d in doc.get("routers", [])
            ]
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise ReportError([f"{self.path}: damaged report store: {exc}"]) from exc

    def _write(self) -> None:
        doc = {
            "version": FORMAT_VERSION,
            "prefixes": [
                _prefix_to(r) for r in sorted(self.prefixes, key=lambda r: (r.router, r.interface, r.prefix))
            ],
            "routers": [
                {
                    "router": r.router,
                    "role": r.role.value if r.role else None,
                    "capability": r.capability.value if r.capability else None,
                }
                for r in sorted(self.routers, key=lambda r: r.router)
            ],
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


def _prefix_to(r: PrefixReport) -> dict[str, Any]:
    return {
        "router": r.router,
        "interface": r.interface,
        "prefix": r.prefix,
        "subnet": r.subnet,
        "flags": flag_names(r.flags),
    }


def _prefix_from(d: dict[str, Any]) -> PrefixReport:
    """One stored report, checked as strictly as `add` checks what it stores (no str() coercion)."""
    return PrefixReport(
        check_router_name(d["router"]),
        _interface(d.get("interface", "")),
        canonical_prefix(d["prefix"]),
        _subnet(d.get("subnet", "")),
        flags_from_names(list(d.get("flags", []))),
        str(Source.API),
    )


def _interface(name: object) -> str:
    """"" is a router-level report; anything else is an interface name (appliance.names)."""
    return "" if name == "" else check_interface_name(name)


def _subnet(value: object) -> str:
    if value == "":
        return ""
    problem = subnet_id_problem(value)
    if problem is not None:
        raise ValueError(f"subnet: {problem}")
    return str(value)
