"""In-memory implementations of the API ports, used by the daemon as the meeting points of its parts.

RulesHolder: the engine publishes each new rule set here (and the store's last saved one seeds it at
start). PushedRules: a FlowspecPort over the store's record of rules per peer. RpkiStatusBoard: RPKI
parts register status functions here (an RtrManager's `status()`, a table's `counts()`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from appliance.model import SavRuleSet


class RulesHolder:
    def __init__(self, initial: tuple[int, SavRuleSet] | None = None) -> None:
        self._current = initial

    def current(self) -> tuple[int, SavRuleSet] | None:
        return self._current

    def publish(self, version: int, ruleset: SavRuleSet) -> None:
        self._current = (version, ruleset)


class _PushRecord(Protocol):
    def pushed(self, peer: str) -> dict[str, str]: ...

    def pushed_peers(self) -> list[str]: ...


class PushedRules:
    """FlowspecPort over what the store recorded as pushed (so it survives restarts)."""

    def __init__(self, record: _PushRecord) -> None:
        self._record = record

    def peers(self) -> list[str]:
        return self._record.pushed_peers()

    def held(self, peer: str) -> Mapping[str, str]:
        return self._record.pushed(peer)


class _HasToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class RpkiStatusBoard:
    """RpkiPort: collects status from whatever RPKI parts run (none: an empty, honest status)."""

    def __init__(self) -> None:
        self._caches: list[Callable[[], Sequence[_HasToDict]]] = []
        self._files: list[Callable[[], Mapping[str, Any]]] = []
        self._counts: Callable[[], Mapping[str, int]] | None = None

    def add_caches(self, status: Callable[[], Sequence[_HasToDict]]) -> None:
        """E.g. an RtrManager's bound `status` method."""
        self._caches.append(status)

    def add_file(self, status: Callable[[], Mapping[str, Any]]) -> None:
        self._files.append(status)

    def set_counts(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """E.g. an RpkiTables' bound `counts` method."""
        self._counts = counts

    def rpki_status(self) -> Mapping[str, Any]:
        return {
            "caches": [c.to_dict() for status in self._caches for c in status()],
            "files": [dict(f()) for f in self._files],
            "counts": dict(self._counts()) if self._counts else {},
        }
