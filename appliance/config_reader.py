"""Reading a TOML configuration with positions: every problem names its key path and line number.

tomllib returns plain dicts without positions, and no field library (tomllib, tomli, tomlkit) exposes
line numbers, so `LineIndex` scans the text itself. It understands what savd configs use: tables,
arrays of tables (counted per parent instance), dotted and quoted keys, and values spanning several
lines (arrays, inline tables, multi-line strings), whose inner lines are skipped. Keys inside inline
tables are not indexed; a lookup falls back to the nearest ancestor that has a line.

`Table` gives typed access to one table and records problems instead of raising, so one pass reports
every error; keys never read are reported as unknown (catches typos). A path is a tuple of keys and
array indices: ("speaker", 0, "peers", 1, "asn").
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from appliance.errors import InputError

Path = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _split_key(text: str) -> tuple[str, ...] | None:
    """Split a (possibly dotted, possibly quoted) TOML key; None when it is not a key."""
    parts: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return None
        if text[i] in "\"'":
            quote = text[i]
            end = text.find(quote, i + 1)
            if end < 0:
                return None
            parts.append(text[i + 1 : end])
            i = end + 1
        else:
            m = _BARE.match(text, i)
            if not m:
                return None
            parts.append(m.group(0))
            i = m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i < n:
            if text[i] != ".":
                return None
            i += 1
    return tuple(parts) if parts else None


def _strip_comment(line: str) -> str:
    """Drop a trailing comment, ignoring '#' inside quoted strings."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


def _open_brackets(value: str) -> int:
    """Net count of unclosed [ and { in a value, ignoring quoted text."""
    depth, quote = 0, ""
    for ch in value:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return depth


class LineIndex:
    """Maps key paths of one TOML text to 1-based line numbers."""

    def __init__(self, text: str) -> None:
        self._lines: dict[Path, int] = {}
        self._scan(text)

    def line_of(self, path: Path) -> int:
        """Line of `path`, or of its nearest ancestor that has one; 0 when none does."""
        for end in range(len(path), 0, -1):
            line = self._lines.get(path[:end])
            if line:
                return line
        return 0

    def known(self) -> Mapping[Path, int]:
        return dict(self._lines)

    def _scan(self, text: str) -> None:
        table: Path = ()
        counts: dict[Path, int] = {}
        arrays: set[tuple[str, ...]] = set()
        depth = 0
        multiline = ""
        for number, raw in enumerate(text.splitlines(), start=1):
            if multiline:
                if multiline in raw:
                    multiline = ""
                continue
            line = _strip_comment(raw).strip()
            if depth > 0:
                depth += _open_brackets(line)
                continue
            if not line:
                continue
            if line.startswith("[[") and line.endswith("]]"):
                keys = _split_key(line[2:-2])
                if keys is not None:
                    arrays.add(keys)
                    parent = self._resolve(keys[:-1], counts, arrays)
                    base = (*parent, keys[-1])
                    index = counts.get(base, -1) + 1
                    counts[base] = index
                    table = (*base, index)
                    self._lines.setdefault(base, number)
                    self._lines[table] = number
                continue
            if line.startswith("[") and line.endswith("]"):
                keys = _split_key(line[1:-1])
                if keys is not None:
                    table = self._resolve(keys, counts, arrays)
                    self._lines[table] = number
                continue
            key_text, sep, value = line.partition("=")
            keys = _split_key(key_text) if sep else None
            if keys is None:
                continue
            self._lines[(*table, *keys)] = number
            value = value.strip()
            for quote in ('"""', "'''"):
                if value.startswith(quote) and value.count(quote) == 1:
                    multiline = quote
            depth = _open_brackets(value)

    @staticmethod
    def _resolve(keys: tuple[str, ...], counts: dict[Path, int], arrays: set[tuple[str, ...]]) -> Path:
        """Turn a header's keys into a path, inserting the current index of each array of tables."""
        path: Path = ()
        for i, key in enumerate(keys):
            path = (*path, key)
            if keys[: i + 1] in arrays and path in counts:
                path = (*path, counts[path])
        return path


def format_path(path: Path) -> str:
    """("speaker", 0, "peers", 1, "asn") -> "speaker[0].peers[1].asn"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


# --- errors --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    key: str
    line: int
    message: str

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(InputError, ValueError):
    """A configuration file that cannot be used; `problems` lists every one found, in file order."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = sorted(problems, key=lambda p: (p.line, p.key))
        super().__init__("\n".join(p.render(source) for p in self.problems))


# --- the reader: typed access that records problems instead of raising -----------------------------------

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)
_MISSING = object()


class Problems:
    def __init__(self, index: LineIndex) -> None:
        self.index = index
        self.items: list[ConfigProblem] = []

    def add(self, path: Path, message: str) -> None:
        self.items.append(ConfigProblem(format_path(path), self.index.line_of(path), message))


class Table:
    """One TOML table being read; keys never read are reported as unknown (catches typos)."""

    def __init__(self, data: Mapping[str, Any], path: Path, problems: Problems) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.used: set[str] = set()

    def _get(self, key: str, required: bool) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                self.problems.add(self.path, f"missing required key '{key}'")
            return _MISSING
        return self.data[key]

    def error(self, key: str, message: str) -> None:
        self.problems.add((*self.path, key), message)

    def get_str(self, key: str, default: str = "", required: bool = False) -> str:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            self.error(key, f"must be a string, got {type(value).__name__}")
            return default
        return value

    def get_int(
        self, key: str, default: int = 0, required: bool = False, lo: int = 0, hi: int = 2**63
    ) -> int:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            self.error(key, f"must be an integer, got {type(value).__name__}")
            return default
        if not lo <= value <= hi:
            self.error(key, f"must be between {lo} and {hi}, got {value}")
            return default
        return value

    def get_float(self, key: str, default: float, lo: float = 0.0) -> float:
        value = self._get(key, False)
        if value is _MISSING:
            return default
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.error(key, f"must be a number, got {type(value).__name__}")
            return default
        if not math.isfinite(value):  # TOML allows nan and inf; no savd setting means either
            self.error(key, f"must be a finite number, got {value}")
            return default
        if value < lo:
            self.error(key, f"must be at least {lo}, got {value}")
            return default
        return float(value)

    def get_bool(self, key: str, default: bool = False) -> bool:
        value = self._get(key, False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.error(key, f"must be true or false, got {value!r}")
            return default
        return value

    def choice(self, key: str, kind: type[E], default: E | None = None, required: bool = False) -> E | None:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in kind)
            self.error(key, f"must be one of {allowed}, got {value!r}")
            return default

    def choices(self, key: str, kind: type[E], default: tuple[E, ...]) -> tuple[E, ...]:
        value = self._get(key, False)
        if value is _MISSING:
            return default
        if not isinstance(value, list) or not value:
            self.error(key, "must be a non-empty list")
            return default
        out: list[E] = []
        for i, item in enumerate(value):
            try:
                out.append(kind(item))
            except ValueError:
                allowed = ", ".join(str(m.value) for m in kind)
                self.problems.add((*self.path, key, i), f"must be one of {allowed}, got {item!r}")
        return tuple(out)

    def table(self, key: str) -> Table:
        value = self._get(key, False)
        if value is _MISSING:
            return Table({}, (*self.path, key), self.problems)
        if not isinstance(value, dict):
            self.error(key, "must be a table")
            return Table({}, (*self.path, key), self.problems)
        return Table(value, (*self.path, key), self.problems)

    def tables(self, key: str) -> list[Table]:
        value = self._get(key, False)
        if value is _MISSING:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(key, f"must be an array of tables ([[{format_path((*self.path, key))}]])")
            return []
        return [Table(v, (*self.path, key, i), self.problems) for i, v in enumerate(value)]

    def finish(self) -> None:
        for key in sorted(set(self.data) - self.used):
            self.error(key, "unknown key")


def read_each(tables: list[Table], read: Callable[[Table], T | None]) -> tuple[T, ...]:
    out: list[T] = []
    for t in tables:
        item = read(t)
        t.finish()
        if item is not None:
            out.append(item)
    return tuple(out)
