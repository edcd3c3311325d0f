"""What the daemon hands its components: the configuration and the shared parts they feed or read.

Lives apart from daemon.py so components (appliance/sources/*, speakers, the enforcer poller) can type
their `start(ctx)` against it without importing the daemon that imports them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from appliance.api.memory import RpkiStatusBoard, RulesHolder
from appliance.config import FLOWSPEC_FAMILIES, Config
from appliance.errors import HostError
from appliance.flowspec.rules import FlowRule
from appliance.model import SavRuleSet
from appliance.monitor import Monitor
from appliance.monitor.counters import CounterBoard, CounterSample
from appliance.monitor.installed import ReportedRules, RuleKey, install_findings, pushed_key, reported_rules
from appliance.monitor.metrics import Metrics
from appliance.state import StateError, StateStore
from appliance.state.pushed import decode_held

log = logging.getLogger("savd.daemon")

RulesListener = Callable[[int, SavRuleSet, SavRuleSet], Awaitable[None]]


class StartError(HostError, RuntimeError):
    """A component (speaker, RPKI, poller, reports file ...) could not start; the message names it.

    A component raises it itself when its message already says all an operator needs (one line, no
    traceback: `savd run` prints it and exits 4); anything else it raises is wrapped into one."""


class Component(Protocol):
    name: str

    async def start(self, ctx: DaemonContext) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class DaemonContext:
    """What components get: the configuration and the shared parts they feed or read."""

    config: Config
    store: StateStore
    monitor: Monitor
    counters: CounterBoard
    metrics: Metrics
    rules: RulesHolder
    rpki: RpkiStatusBoard
    rules_listeners: list[RulesListener] = field(default_factory=list)
    install_missing: dict[str, frozenset[RuleKey]] = field(default_factory=dict)
    install_decoded: dict[str, dict[str, tuple[FlowRule, RuleKey]]] = field(default_factory=dict)
    #: router -> (time.monotonic() it arrived, its enforcer's rule entries): the drift check's input
    rule_listings: dict[str, tuple[float, Sequence[Any]]] = field(default_factory=dict)
    #: peer -> its collaboration agreement as last reported (set by appliance/collab/component.py)
    agreements: Callable[[], Mapping[str, Any]] | None = None
    #: revoke the agreement with a peer (appliance/collab/component.py `CollabComponent.end`)
    end_agreement: Callable[[str], Awaitable[Any]] | None = None
    #: undo a revocation (`CollabComponent.allow`)
    allow_peer: Callable[[str], Awaitable[bool]] | None = None

    @staticmethod
    def standalone(config: Config, store: StateStore | None = None) -> DaemonContext:
        """A context with fresh parts and no journal, for the CLIs that run a source once (the same
        components as `savd run`, e.g. `savd paths show`) and for tests."""
        monitor = Monitor()
        counters = CounterBoard()
        return DaemonContext(config, store or StateStore(), monitor, counters, Metrics(monitor, counters),
                             RulesHolder(), RpkiStatusBoard())

    def on_rules(self, listener: RulesListener) -> None:
        """Call `listener(version, new, old)` after each new rule set (e.g. the pusher)."""
        self.rules_listeners.append(listener)

    def report_counters(self, samples: Iterable[CounterSample], router: str = "") -> None:
        """For enforcer pollers: absolute counters in (of `router`'s enforcer); spoofing-seen alarms raised
        as drop counters rise."""
        for notice in self.counters.update(samples, self.monitor.clock.now(), (router,) if router else ()):
            self.monitor.emit(notice)

    def report_rules(self, router: str, reported: Iterable[Any] | ReportedRules) -> None:
        """For enforcer pollers: the rules a router's enforcer holds in; a rule savd pushed to the router
        that is not installed there raises an alarm (appliance.monitor.installed), cleared once it is.
        The listing is kept for the drift check (`rule_listings`), which owns rules missing altogether.
        The poller passes it keyed already (`reported_rules`, in its worker thread)."""
        keyed = reported_rules(reported)
        self.rule_listings[router] = (time.monotonic(), keyed.entries)
        known = self.install_decoded.get(router, {})
        held: dict[str, tuple[FlowRule, RuleKey]] = {}  # rule text -> rule: each poll decodes only the new
        try:
            for peer in flowspec_peers(self.config, router):
                for key, text in self.store.pushed(peer).items():
                    held[text] = known.get(text) or _keyed(decode_held(peer, key, text))
        except StateError as exc:
            log.warning("event=installed-check-skipped router=%s error=%r", router, str(exc))
            return
        self.install_decoded[router] = held
        pushed = {k: r for r, k in held.values()}
        notices, self.install_missing[router] = install_findings(
            router, pushed, keyed, self.install_missing.get(router, frozenset()),
            absent=self.config.timers.drift_check_s <= 0)
        self.monitor.reconcile_notices(f"installed:{router}", notices)



def _keyed(rule: FlowRule) -> tuple[FlowRule, RuleKey]:
    return rule, pushed_key(rule)


def flowspec_peers(config: Config, router: str) -> list[str]:
    """Addresses of the configured peers that receive `router`'s FlowSpec."""
    return [p.address for s in config.speakers for p in s.peers
            if p.router == router and any(f in FLOWSPEC_FAMILIES for f in p.families)]


__all__ = ["Component", "DaemonContext", "RulesListener", "flowspec_peers"]
