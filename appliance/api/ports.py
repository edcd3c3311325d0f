"""The interfaces the API reads and writes through; the daemon passes real implementations.

The state store (appliance.state.StateStore) satisfies FactsPort; the Monitor, CounterBoard and Metrics
are used as they are. RulesPort, RpkiPort and FlowspecPort are what the engine, RPKI and pusher parts
satisfy; memory.py has the holders the daemon uses until (and while) those parts publish into them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.collab.model import Agreement
from appliance.engine.snapshot import Snapshot as EngineInput
from appliance.model import Inspector, SavRuleSet
from appliance.monitor import Monitor
from appliance.monitor.counters import CounterBoard
from appliance.monitor.metrics import Metrics
from appliance.monitor.traces import TraceBoard
from appliance.state import Applied, Change, StateSnapshot


class FactsPort(Protocol):
    """Input facts: read a snapshot, apply a change (the API only changes source "api")."""

    def snapshot(self) -> StateSnapshot: ...

    def apply(self, change: Change) -> Applied: ...


class RulesPort(Protocol):
    def current(self) -> tuple[int, SavRuleSet] | None:
        """The rule set in force and the state version it was computed from; None before the first."""
        ...


class RpkiPort(Protocol):
    def rpki_status(self) -> Mapping[str, Any]:
        """JSON-ready: {"caches": [...], "files": [...], "counts": {"vrp": n, "aspa": n}, ...}."""
        ...


class FlowspecPort(Protocol):
    def peers(self) -> list[str]: ...

    def held(self, peer: str) -> Mapping[str, str]:
        """The FlowSpec rules `peer` holds: NLRI key -> rule text (as pushed)."""
        ...


@dataclass(frozen=True, slots=True)
class ApiPorts:
    facts: FactsPort
    rules: RulesPort
    rpki: RpkiPort
    flowspec: FlowspecPort
    monitor: Monitor
    counters: CounterBoard
    metrics: Metrics
    #: the engine's input for a snapshot (sources/assemble.py with the daemon's configuration): the
    #: topology endpoint shows the learned routers with their resolved roles, and the configured eBGP
    #: neighbours (routers named only in the configuration are not listed: the topology is what was learned)
    inputs: Callable[[StateSnapshot], EngineInput] | None = None
    #: spoofing traces (monitor/traces.py), fed from the bus by whoever made it; None: the API keeps one
    traces: TraceBoard | None = None
    #: the configured inspectors (`[[steering.inspector]]`, sources/assemble.py `inspectors` with the
    #: daemon's configuration); None: only the state's (API) ones are listed
    inspectors: Callable[[StateSnapshot], Sequence[Inspector]] | None = None
    #: peer -> its collaboration agreement as last reported (sources/collab.py `CollabSource.agreements`);
    #: None: no collaboration runs, only the state's allowances are listed
    agreements: Callable[[], Mapping[str, Agreement]] | None = None
    #: END_AGREEMENT from our side with that peer (appliance/collab/component.py `end`): the agreement as
    #: ended, None when there is none in force with it; None: no collaboration runs
    end_agreement: Callable[[str], Awaitable[Agreement | None]] | None = None
    #: undo a revocation: whether the peer was revoked (`CollabComponent.allow`)
    allow_peer: Callable[[str], Awaitable[bool]] | None = None
    #: wall clock (epoch seconds): which allowances are live; None: time.time
    now: Callable[[], float] | None = None
