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
A file that is not a database, a newer schema or a row that does not decode raises StateError naming
the file and row; the daemon then stops with that message (or moves the file aside when told to).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from appliance.model import InterfaceRules, SavRuleSet
from appliance.state.changes import Change, decode_change, encode_change
from appliance.state.errors import StateError
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
            raise StateError(f"not a usable journal: {exc}", str(path)) from exc
        except OSError as exc:
            raise StateError(f"cannot open journal: {exc.strerror}", str(path)) from exc
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
            raise StateError(f"journal write/read failed: {exc}", self.path) from exc

    # --- inputs and checkpoint ---------------------------------------------------------------------

    def append(self, change: Change, version: int, time: float) -> int:
        """Record one applied change; returns its sequence number."""
        cur = self._run("INSERT INTO inputs(time, version, change) VALUES(?,?,?)",
                        (time, version, encode_change(change)))
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
            raise StateError(f"checkpoint failed: {exc}", self.path) from exc

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
            raise StateError(f"recording push to {peer} failed: {exc}", self.path) from exc

    def pushed(self, peer: str) -> dict[str, str]:
        rows = self._run("SELECT key, rule FROM pushed WHERE peer=? ORDER BY key", (peer,)).fetchall()
        return {str(k): str(r) for k, r in rows}

    def pushed_peers(self) -> list[str]:
        return [str(r[0]) for r in self._run("SELECT DISTINCT peer FROM pushed ORDER BY peer").fetchall()]

    def forget_peer(self, peer: str) -> None:
        self._run("DELETE FROM pushed WHERE peer=?", (peer,))

    # --- last rule set -------------------------------------------------------------------------------

    def save_ruleset(self, ruleset: SavRuleSet, version: int, time: float) -> None:
        """Write the interface rules that differ from the last save (all of them the first time)."""
        rules = {r.key(): r for r in ruleset.rules}
        saved = self._saved_rules
        if saved is None:
            gone: Iterable[tuple[str, str]] = ()
            write = list(rules.values())
        else:
            gone = saved.keys() - rules.keys()
            write = [r for k, r in rules.items() if (old := saved.get(k)) is not r and old != r]
        try:
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.execute("INSERT OR REPLACE INTO ruleset VALUES(1,?,?,'')", (version, time))
                if saved is None:
                    self._conn.execute("DELETE FROM ruleset_rule")
                self._conn.executemany("DELETE FROM ruleset_rule WHERE router=? AND interface=?", gone)
                self._conn.executemany(
                    "INSERT OR REPLACE INTO ruleset_rule VALUES(?,?,?)",
                    [(r.router, r.interface, json.dumps(r.to_dict(), sort_keys=True, separators=(",", ":")))
                     for r in write])
        except sqlite3.DatabaseError as exc:
            raise StateError(f"saving the rule set failed: {exc}", self.path) from exc
        self._saved_rules = rules

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
