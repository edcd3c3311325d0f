"""The SQLite journal in the data directory: what a restart needs to come back without churn.

Tables (schema version 1):
- inputs(seq, time, version, change): every Change applied since the last checkpoint, as JSON;
- checkpoint(id=1, seq, version, time, facts): the compacted state, {kind: [facts, their sources]};
- pushed(peer, key, rule, time): the FlowSpec rules each peer holds, keyed by NLRI, so a restarted
  pusher diffs against what routers have instead of withdrawing everything first;
- ruleset(id=1, version, time, rules) and ruleset_rule(router, interface, rule): the last rule set
  computed, served by the API at once; one row per interface rule, and a save writes only the rules that
  changed since the previous one (at Internet scale the whole set is hundreds of MB of JSON, one change a
  few rules). `ruleset.rules` holds the whole set as written by earlier versions, read when no rows exist.

Restore = checkpoint + replay of later inputs. WAL mode; one connection, used by the one writer task.
A file that is not a database, a newer schema, a zero-length file or a row that does not decode raises
StateError(kind=CORRUPT) naming the file and row; the daemon then stops with that message (or moves
the file aside when told to). A data directory it cannot write is UNWRITABLE, a full disk DISK_FULL
(errors.py): resetting would not help those, so the daemon does not suggest it.

Durability (`synchronous`): NORMAL, except for inputs whose source nobody can send again. In WAL mode
NORMAL never corrupts the file, but a power loss (not a crash of savd) may lose the last commits since
the WAL was last synced; FULL syncs the WAL at every commit, about 2.5 ms instead of 0.07 ms per input
on the reference VM, which a BGP-LS or RTR burst of 10,000 inputs would turn into 25 s. Inputs from
BGP-LS, RTR, BMP and the reports file are learned again after a restart; a report POSTed to the API is
not, and its client was told it is stored. So `append(durable=True)` (the store passes it for the
"api" source) commits with synchronous=FULL, which also syncs every earlier commit in the WAL.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from appliance.model import InterfaceRules, SavRuleSet
from appliance.state.changes import Change, decode_change, encode_change
from appliance.state.errors import StateError, StateErrorKind
from appliance.state.facts import Fact, decode_facts, encode_facts

SCHEMA_VERSION = 1
FILE_NAME = "savd-journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inputs(seq INTEGER PRIMARY KEY, time REAL NOT NULL, version INTEGER NOT NULL,
                                  change TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoint(id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,
                                      version INTEGER NOT NULL, time REAL NOT NULL, facts TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pushed(peer TEXT NOT NULL, key TEXT NOT NULL, rule TEXT NOT NULL,
                                  time REAL NOT NULL, PRIMARY KEY(peer, key));
CREATE TABLE IF NOT EXISTS ruleset(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL,
                                   time REAL NOT NULL, rules TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ruleset_rule(router TEXT NOT NULL, interface TEXT NOT NULL, rule TEXT NOT NULL,
                                        PRIMARY KEY(router, interface));
"""

FactSources = Mapping[Fact, frozenset[str]]

_SQLITE_KINDS = {
    sqlite3.SQLITE_FULL: StateErrorKind.DISK_FULL,
    sqlite3.SQLITE_READONLY: StateErrorKind.UNWRITABLE,
    sqlite3.SQLITE_CANTOPEN: StateErrorKind.UNWRITABLE,
    sqlite3.SQLITE_PERM: StateErrorKind.UNWRITABLE,
    sqlite3.SQLITE_AUTH: StateErrorKind.UNWRITABLE,
    sqlite3.SQLITE_NOTADB: StateErrorKind.CORRUPT,
    sqlite3.SQLITE_CORRUPT: StateErrorKind.CORRUPT,
    sqlite3.SQLITE_FORMAT: StateErrorKind.CORRUPT,
}
_OS_KINDS = {
    errno.ENOSPC: StateErrorKind.DISK_FULL,
    errno.EDQUOT: StateErrorKind.DISK_FULL,
    errno.EACCES: StateErrorKind.UNWRITABLE,
    errno.EPERM: StateErrorKind.UNWRITABLE,
    errno.EROFS: StateErrorKind.UNWRITABLE,
}


def sqlite_kind(exc: sqlite3.Error) -> StateErrorKind:
    """What a SQLite error means for the operator: its primary result code decides (IO when unknown)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return StateErrorKind.IO
    return _SQLITE_KINDS.get(code & 0xFF, StateErrorKind.IO)


def os_kind(exc: OSError) -> StateErrorKind:
    return _OS_KINDS.get(exc.errno or 0, StateErrorKind.IO)


def _check_usable(data_dir: Path, path: Path) -> None:
    """Refuse, before SQLite runs, what it would misreport or hide.

    A data directory this user cannot write makes SQLite say "unable to open database file" (read as
    a corrupt journal, and resetting cannot fix it). A zero-length journal opens as a new, empty one:
    savd would start with no state and no warning, so it is refused as CORRUPT (WAL mode writes the
    header at creation, so only truncation or an outside `touch` leaves the file empty with no WAL).
    """
    file_ok = not path.exists() or os.access(path, os.R_OK | os.W_OK)
    if not (os.access(data_dir, os.W_OK | os.X_OK) and file_ok):
        raise StateError(f"data directory is not writable by uid {os.geteuid()}: check the owner and mode "
                         f"of {data_dir} and the journal, and that the file system is not mounted "
                         "read-only", str(path), kind=StateErrorKind.UNWRITABLE)
    wal = path.with_name(path.name + "-wal")
    if path.exists() and path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0):
        raise StateError("journal file is empty (zero length): the saved state is gone (truncated or "
                         "replaced file)", str(path), kind=StateErrorKind.CORRUPT)


def encode_rule(rule: InterfaceRules) -> str:
    """A rule as the journal stores it (one row of ruleset_rule)."""
    return json.dumps(rule.to_dict(), sort_keys=True, separators=(",", ":"))


def encode_rules(rules: Iterable[InterfaceRules]) -> dict[tuple[str, str], tuple[InterfaceRules, str]]:
    """Encode rules ahead of `Journal.save_ruleset`, e.g. in a worker thread: a border router's
    blocklists take tens of milliseconds each, which the event loop should not wait for."""
    return {r.key(): (r, encode_rule(r)) for r in rules}


def _encoded(rule: InterfaceRules, done: Mapping[tuple[str, str], tuple[InterfaceRules, str]]) -> str:
    pre = done.get(rule.key())
    return pre[1] if pre is not None and pre[0] is rule else encode_rule(rule)


class Journal:
    """An open journal. Use `Journal.open(data_dir)`; close it with `close()` (or `with`)."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self._saved_rules: dict[tuple[str, str], InterfaceRules] | None = None  # as in ruleset_rule

    @classmethod
    def open(cls, data_dir: Path) -> Journal:
        path = data_dir / FILE_NAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the data directory: {exc.strerror}", str(path),
                             kind=os_kind(exc)) from exc
        _check_usable(data_dir, path)
        try:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES('schema', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                conn.close()
                raise StateError(f"journal schema {row[0]} is not {SCHEMA_VERSION} (written by another savd)",
                                 str(path))
        except sqlite3.DatabaseError as exc:
            kind = sqlite_kind(exc)
            what = "not a usable journal" if kind is StateErrorKind.CORRUPT else "cannot open the journal"
            raise StateError(f"{what}: {exc}", str(path), kind=kind) from exc
        except OSError as exc:
            raise StateError(f"cannot open journal: {exc.strerror}", str(path), kind=os_kind(exc)) from exc
        return cls(conn, str(path))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _run(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, tuple(params))
        except sqlite3.DatabaseError as exc:
            raise StateError(f"journal write/read failed: {exc}", self.path, kind=sqlite_kind(exc)) from exc

    def _failed(self, what: str, exc: sqlite3.DatabaseError) -> StateError:
        return StateError(f"{what}: {exc}", self.path, kind=sqlite_kind(exc))

    # --- inputs and checkpoint ---------------------------------------------------------------------

    def append(self, change: Change, version: int, time: float, durable: bool = False) -> int:
        """Record one change before it is applied; returns its sequence number.

        `durable`: sync the WAL at this commit (synchronous=FULL), for inputs no source sends again.
        """
        if not durable:
            cur = self._run("INSERT INTO inputs(time, version, change) VALUES(?,?,?)",
                            (time, version, encode_change(change)))
            return int(cur.lastrowid or 0)
        self._run("PRAGMA synchronous=FULL")
        try:
            cur = self._run("INSERT INTO inputs(time, version, change) VALUES(?,?,?)",
                            (time, version, encode_change(change)))
        finally:
            self._run("PRAGMA synchronous=NORMAL")
        return int(cur.lastrowid or 0)

    def input_count(self) -> int:
        return int(self._run("SELECT COUNT(*) FROM inputs").fetchone()[0])

    def checkpoint(self, facts: Mapping[str, FactSources], version: int, time: float) -> None:
        """Replace inputs with one compacted state, atomically."""
        doc = {}
        for kind, table in sorted(facts.items()):
            items = list(table)
            doc[kind] = [encode_facts(kind, items), [sorted(table[f]) for f in items]]
        blob = json.dumps(doc, separators=(",", ":"))
        try:
            with self._conn:
                self._conn.execute("BEGIN")
                seq = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM inputs").fetchone()[0]
                self._conn.execute("INSERT OR REPLACE INTO checkpoint VALUES(1,?,?,?,?)",
                                   (seq, version, time, blob))
                self._conn.execute("DELETE FROM inputs WHERE seq <= ?", (seq,))
        except sqlite3.DatabaseError as exc:
            raise self._failed("checkpoint failed", exc) from exc

    def load_checkpoint(self) -> tuple[int, dict[str, dict[Fact, set[str]]]]:
        """(version, facts by kind with their sources); (0, {}) when there is none."""
        row = self._run("SELECT version, facts FROM checkpoint WHERE id=1").fetchone()
        if row is None:
            return 0, {}
        out: dict[str, dict[Fact, set[str]]] = {}
        try:
            for kind, (data, sources) in json.loads(row[1]).items():
                facts = decode_facts(kind, data)
                if len(facts) != len(sources):
                    raise ValueError(f"{kind}: {len(facts)} facts but {len(sources)} source lists")
                out[kind] = {f: set(s) for f, s in zip(facts, sources, strict=True)}
        except (ValueError, TypeError) as exc:
            raise StateError(f"checkpoint does not decode: {exc}", self.path) from exc
        return int(row[0]), out

    def replay(self) -> Iterator[tuple[int, int, Change]]:
        """(seq, version, change) of every input after the checkpoint, in order."""
        rows = self._run("SELECT seq, version, change FROM inputs ORDER BY seq").fetchall()
        for seq, version, text in rows:
            try:
                yield int(seq), int(version), decode_change(text)
            except ValueError as exc:
                raise StateError(f"input does not decode: {exc}", self.path, int(seq)) from exc

    # --- rules pushed per peer -----------------------------------------------------------------------

    def record_push(
        self, peer: str, announced: Mapping[str, str], withdrawn: Iterable[str], time: float
    ) -> None:
        """After a successful push: `announced` (key -> rule text) are held, `withdrawn` keys are not."""
        try:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.executemany("DELETE FROM pushed WHERE peer=? AND key=?",
                                       [(peer, k) for k in withdrawn])
                self._conn.executemany("INSERT OR REPLACE INTO pushed VALUES(?,?,?,?)",
                                       [(peer, k, r, time) for k, r in announced.items()])
        except sqlite3.DatabaseError as exc:
            raise self._failed(f"recording push to {peer} failed", exc) from exc

    def pushed(self, peer: str) -> dict[str, str]:
        rows = self._run("SELECT key, rule FROM pushed WHERE peer=? ORDER BY key", (peer,)).fetchall()
        return {str(k): str(r) for k, r in rows}

    def pushed_counts(self) -> dict[str, int]:
        """Rules recorded per peer, counted in SQL (a Prometheus scrape must not read every rule)."""
        rows = self._run("SELECT peer, COUNT(*) FROM pushed GROUP BY peer ORDER BY peer").fetchall()
        return {str(p): int(n) for p, n in rows}

    def pushed_peers(self) -> list[str]:
        return [str(r[0]) for r in self._run("SELECT DISTINCT peer FROM pushed ORDER BY peer").fetchall()]

    def forget_peer(self, peer: str) -> None:
        self._run("DELETE FROM pushed WHERE peer=?", (peer,))

    # --- last rule set -------------------------------------------------------------------------------

    def save_ruleset(self, ruleset: SavRuleSet, version: int, time: float,
                     encoded: Mapping[tuple[str, str], tuple[InterfaceRules, str]] | None = None) -> None:
        """Write the interface rules that differ from the last save (all of them the first time).
        `encoded` holds rules already encoded by `encode_rules` (off the event loop); others are encoded
        here."""
        done = encoded or {}
        rules = {r.key(): r for r in ruleset.rules}
        saved = self._saved_rules
        gone: Iterable[tuple[str, str]] = () if saved is None else saved.keys() - rules.keys()
        write = self.unsaved_rules(ruleset)
        try:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.execute("INSERT OR REPLACE INTO ruleset VALUES(1,?,?,'')", (version, time))
                if saved is None:
                    self._conn.execute("DELETE FROM ruleset_rule")
                self._conn.executemany("DELETE FROM ruleset_rule WHERE router=? AND interface=?", gone)
                self._conn.executemany(
                    "INSERT OR REPLACE INTO ruleset_rule VALUES(?,?,?)",
                    [(r.router, r.interface, _encoded(r, done)) for r in write])
        except sqlite3.DatabaseError as exc:
            raise self._failed("saving the rule set failed", exc) from exc
        self._saved_rules = rules

    def unsaved_rules(self, ruleset: SavRuleSet) -> list[InterfaceRules]:
        """The rules of `ruleset` that differ from the last save (all of them the first time)."""
        saved = self._saved_rules
        if saved is None:
            return list(ruleset.rules)
        return [r for r in ruleset.rules if (old := saved.get(r.key())) is not r and old != r]

    def load_ruleset(self) -> tuple[int, SavRuleSet] | None:
        row = self._run("SELECT version, rules FROM ruleset WHERE id=1").fetchone()
        if row is None:
            return None
        rows = self._run("SELECT rule FROM ruleset_rule ORDER BY router, interface").fetchall()
        try:
            if rows:
                ruleset = SavRuleSet.from_dict({"rules": [json.loads(r[0]) for r in rows]})
            else:  # empty, or the whole set in one text as earlier versions wrote it
                ruleset = SavRuleSet.from_dict(json.loads(row[1])) if row[1] else SavRuleSet()
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"saved rule set does not decode: {exc}", self.path) from exc
        self._saved_rules = {r.key(): r for r in ruleset.rules}
        return int(row[0]), ruleset

    def discard_ruleset(self) -> None:
        """Forget the saved rule set (what `--reset-corrupt-journal` does when only it is damaged): it is
        derived from the state, which the next recompute turns into rules again."""
        try:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.execute("DELETE FROM ruleset_rule")
                self._conn.execute("DELETE FROM ruleset")
        except sqlite3.DatabaseError as exc:
            raise self._failed("discarding the saved rule set failed", exc) from exc
        self._saved_rules = None
