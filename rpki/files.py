"""Relying-party output files as an RPKI source: rpki-client JSON, Routinator json/jsonext, VRP CSV.

Owns parsing and normalising the rpki-client/Routinator/StayRTR JSON variants to one model (VRP keys
plus customer -> providers), and reloading watched files when they change. ASNs may be integers or
"AS..." strings; ASPAs may be `aspas` with `customer_asid` or `customer`, `providers` or
`provider_asids`, or the older per-AFI `provider_authorizations` (united per customer, since current
ASPA objects have no AFI). A bad file raises RpkiFileError naming the file and the entry; a watched
file that turns bad keeps its last good data and raises an alarm event (a half-written file must not
withdraw a whole table), and a file that disappears is withdrawn.
"""

from __future__ import annotations

import asyncio
import csv
import io
import ipaddress
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import InputError
from appliance.model import Aspa, Event, Severity
from rpki.keys import KeySet, keys_to_vrps, make_key
from rpki.tables import RpkiTables

log = logging.getLogger(__name__)


class RpkiFileError(InputError, ValueError):
    """A file that cannot be used; `path` and `entry` (e.g. "roas[12]") locate the problem."""

    def __init__(self, path: str, entry: str, reason: str) -> None:
        super().__init__(f"{path}: {entry}: {reason}" if entry else f"{path}: {reason}")
        self.path, self.entry, self.reason = path, entry, reason


@dataclass(frozen=True, slots=True)
class RpkiFileData:
    path: str
    vrps: frozenset[bytes]
    aspas: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def aspa_records(self) -> tuple[Aspa, ...]:
        return tuple(Aspa(c, p) for c, p in sorted(self.aspas.items()))

    def vrp_records(self) -> tuple[Any, ...]:
        return keys_to_vrps(self.vrps)


def parse_asn(value: Any) -> int:
    """65001, "65001", "AS65001", "as65001" -> 65001; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"bad ASN {value!r}")
    if isinstance(value, int):
        asn = value
    elif isinstance(value, str):
        text = value.strip()
        text = text[2:] if text[:2].upper() == "AS" else text
        if not text.isdigit():
            raise ValueError(f"bad ASN {value!r}")
        asn = int(text)
    else:
        raise ValueError(f"bad ASN {value!r}")
    if not 0 <= asn <= 0xFFFFFFFF:
        raise ValueError(f"ASN {asn} out of range")
    return asn


def load(path: str | os.PathLike[str]) -> RpkiFileData:
    """Load one file; the format is told by content (JSON object or CSV header)."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise RpkiFileError(name, "", f"cannot read: {exc.strerror or exc}") from exc
    text = raw.decode("utf-8-sig", errors="replace")
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RpkiFileError(name, f"line {exc.lineno}", f"invalid JSON: {exc.msg}") from exc
        return parse_json(doc, name)
    return parse_csv(text, name)


def parse_json(doc: Any, name: str = "<json>") -> RpkiFileData:
    if not isinstance(doc, dict):
        raise RpkiFileError(name, "", "top level is not a JSON object")
    if "roas" not in doc and "aspas" not in doc and "provider_authorizations" not in doc:
        raise RpkiFileError(name, "", "no 'roas', 'aspas' or 'provider_authorizations' key")
    roas = doc.get("roas", [])
    if not isinstance(roas, list):
        raise RpkiFileError(name, "roas", "not a list")
    keys: set[bytes] = set()
    for i, roa in enumerate(roas):
        try:
            if not isinstance(roa, dict):
                raise ValueError("not an object")
            prefix = roa["prefix"]
            max_len = roa.get("maxLength", roa.get("max_length", roa.get("maxlen")))
            if max_len is None:
                raise KeyError("maxLength")
            if not isinstance(max_len, int) or isinstance(max_len, bool):
                raise ValueError(f"maxLength {max_len!r} is not an integer")
            keys.add(make_key(_strict_prefix(prefix), max_len, parse_asn(roa["asn"])))
        except KeyError as exc:
            raise RpkiFileError(name, f"roas[{i}]", f"missing {exc.args[0]!r}") from None
        except (ValueError, TypeError) as exc:
            raise RpkiFileError(name, f"roas[{i}]", str(exc)) from None
    aspas: dict[int, set[int]] = {}
    if "aspas" in doc:
        _parse_aspa_list(doc["aspas"], "aspas", name, aspas)
    pas = doc.get("provider_authorizations")
    if pas is not None:
        if not isinstance(pas, dict):
            raise RpkiFileError(name, "provider_authorizations", "not an object")
        for afi, entries in sorted(pas.items()):
            _parse_aspa_list(entries, f"provider_authorizations.{afi}", name, aspas)
    return RpkiFileData(name, frozenset(keys), _normal_aspas(aspas))


def _strict_prefix(prefix: Any) -> str:
    if not isinstance(prefix, str):
        raise ValueError(f"prefix {prefix!r} is not a string")
    try:
        return str(ipaddress.ip_network(prefix.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"bad prefix {prefix!r}: {exc}") from None


def _parse_aspa_list(entries: Any, where: str, name: str, out: dict[int, set[int]]) -> None:
    if not isinstance(entries, list):
        raise RpkiFileError(name, where, "not a list")
    for i, entry in enumerate(entries):
        try:
            if not isinstance(entry, dict):
                raise ValueError("not an object")
            customer_raw = entry.get("customer_asid", entry.get("customer"))
            if customer_raw is None:
                raise KeyError("customer_asid")
            providers_raw = entry.get("providers", entry.get("provider_asids"))
            if providers_raw is None:
                raise KeyError("providers")
            if not isinstance(providers_raw, list):
                raise ValueError("providers is not a list")
            customer = parse_asn(customer_raw)
            providers = {parse_asn(p) for p in providers_raw}
            if customer in providers:
                raise ValueError(f"AS{customer} lists itself as provider")
            out.setdefault(customer, set()).update(providers)
        except KeyError as exc:
            raise RpkiFileError(name, f"{where}[{i}]", f"missing {exc.args[0]!r}") from None
        except (ValueError, TypeError) as exc:
            raise RpkiFileError(name, f"{where}[{i}]", str(exc)) from None


def _normal_aspas(aspas: dict[int, set[int]]) -> dict[int, tuple[int, ...]]:
    """An empty or AS0-only provider set is AS0 (no providers), written (0,)."""
    out: dict[int, tuple[int, ...]] = {}
    for customer, providers in aspas.items():
        real = providers - {0}
        out[customer] = tuple(sorted(real)) if real else (0,)
    return out


_CSV_COLUMNS = {"asn": ("asn",), "prefix": ("ip prefix", "prefix"), "max": ("max length", "maxlength")}


def parse_csv(text: str, name: str = "<csv>") -> RpkiFileData:
    """Routinator csv/csvext, rpki-client csv, RIPE archive roas.csv: columns found by header name."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise RpkiFileError(name, "", "empty file") from None
    cols: dict[str, int] = {}
    for key, names in _CSV_COLUMNS.items():
        for n in names:
            if n in header:
                cols[key] = header.index(n)
                break
        else:
            raise RpkiFileError(name, "line 1", f"not a VRP file: no {names[0]!r} column in {header}")
    keys: set[bytes] = set()
    for line_no, row in enumerate(reader, start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            keys.add(make_key(_strict_prefix(row[cols["prefix"]]), int(row[cols["max"]]),
                              parse_asn(row[cols["asn"]])))
        except IndexError:
            raise RpkiFileError(name, f"line {line_no}", f"{len(row)} columns") from None
        except ValueError as exc:
            raise RpkiFileError(name, f"line {line_no}", str(exc)) from None
    return RpkiFileData(name, frozenset(keys), {})


# --- watching ----------------------------------------------------------------------------------------


class FileWatcher:
    """Polls the mtime/size of files and republishes each as source "file:<path>" on change."""

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        tables: RpkiTables,
        interval_s: float = 2.0,
        on_event: Callable[[Event], object] | None = None,
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.tables = tables
        self.interval_s = interval_s
        self.on_event = on_event
        self.errors: dict[str, str] = {}
        self.last_update: dict[str, float] = {}
        self.counts: dict[str, tuple[int, int]] = {}
        self._seen: dict[str, tuple[float, int] | None] = {}

    def poll(self) -> list[str]:
        """Reload changed files now; returns the paths reloaded or withdrawn."""
        changed = []
        for path in self.paths:
            try:
                st = os.stat(path)
                stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
            except OSError:
                stamp = None
            if path in self._seen and self._seen[path] == stamp:
                continue
            self._seen[path] = stamp
            changed.append(path)
            if stamp is None:
                self.last_update.pop(path, None)
                self.counts.pop(path, None)
                self._alarm(path, "rpki.file.missing", "file missing: its data withdrawn")
                self.tables.remove_source(f"file:{path}")
                continue
            try:
                data = load(path)
            except RpkiFileError as exc:
                self._alarm(path, "rpki.file.invalid", f"{exc}; keeping the last good data")
                continue
            self.errors.pop(path, None)
            self.last_update[path] = time.time()
            self.counts[path] = (len(data.vrps), len(data.aspas))
            self.tables.set_source(f"file:{path}", data.vrps, data.aspas)
            log.info("rpki.file.loaded path=%s vrps=%d aspas=%d", path, len(data.vrps), len(data.aspas))
        return changed

    def status_of(self, path: str) -> dict[str, Any]:
        """JSON-ready status of one watched file (the daemon's RPKI status board takes one per file)."""
        vrps, aspas = self.counts.get(path, (0, 0))
        return {"path": path, "last_update": self.last_update.get(path), "vrps": vrps, "aspas": aspas,
                "error": self.errors.get(path, "")}

    def status(self) -> list[dict[str, Any]]:
        return [self.status_of(p) for p in self.paths]

    async def run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(self.interval_s)

    def _alarm(self, path: str, etype: str, message: str) -> None:
        self.errors[path] = message
        log.warning("%s path=%s message=%r", etype, path, message)
        if self.on_event is not None:
            self.on_event(Event(time.time(), f"file:{path}", etype, Severity.ERROR, message, {"path": path},
                                True))


def merge(files: Iterable[RpkiFileData]) -> tuple[KeySet, dict[int, tuple[int, ...]]]:
    """Union of several files' data (for one-shot use without tables)."""
    keys: set[bytes] = set()
    aspas: dict[int, set[int]] = {}
    for f in files:
        keys |= f.vrps
        for c, p in f.aspas.items():
            aspas.setdefault(c, set()).update(p)
    return keys, _normal_aspas(aspas)
