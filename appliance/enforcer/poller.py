"""Appliance side: collect every router's enforcer counters and hand them to the monitor.

For each `[[enforcer]]` of the configuration (appliance.config.EnforcerConfig): GET `<url>/counters`,
or, for `netns = "..."`, the same from the node's endpoint on 127.0.0.1:9180 inside that namespace (a
socket made there from savd's process: appliance/netns.py). The document's `samples` become
monitor.counters.CounterSample records (absolute counters; the CounterBoard turns rises of drop counters
into spoofing alarms); its `rules` (state per route) go to the daemon, which alarms on a pushed rule the
router did not install (appliance.monitor.installed). An enforcer that does not answer raises an
enforcer-unreachable alarm (a stopped enforcer removes its table: nothing is enforced there), cleared when
it answers again; its
counters simply stop rising, its other alarms stay as they were. An enforcer whose BGP session with its
router's FRR has been down `SESSION_DOWN_AFTER_S` (the document's `session`) raises enforcer.session-down
with the enforcer's reason and diagnosis, cleared when the session is established: otherwise the routes it
lost only show as missing rules. A document without `session` (an older enforcer) raises nothing.

Wired into the daemon by appliance/wiring.py (`factory`).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from appliance.errors import ExternalError
from appliance.monitor.counters import CounterSample
from appliance.monitor.events import EnforcerReachable, EnforcerSessionDown, Notice
from appliance.monitor.installed import ReportedRules, reported_rules
from appliance.netns import run_in
from appliance.periodic import Periodic

if TYPE_CHECKING:
    from appliance.context import DaemonContext

log = logging.getLogger(__name__)

__all__ = ["SESSION_DOWN_AFTER_S", "EnforcerPoller", "PollError", "factory", "fetch", "samples_from"]

SESSION_DOWN_AFTER_S = 15.0   # a session down this long is an alarm (FRR restarts and flaps are shorter)
ENFORCER_ENDPOINT = ("127.0.0.1", 9180)   # savd-enforcer run --http default, inside a netns target


class PollError(ExternalError, RuntimeError):
    """An enforcer could not be read; `router` names it."""

    def __init__(self, router: str, message: str) -> None:
        super().__init__(f"enforcer {router}: {message}")
        self.router = router


class _Target(Protocol):
    @property
    def router(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def netns(self) -> str: ...


def _rule_names(doc: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """(interface, source prefix) -> the NLRI of the enforcer rule counting it, from the document's
    `rules` (each with its `per_interface` counters): what makes a sample a policy-hit counter."""
    names: dict[tuple[str, str], str] = {}
    for rule in doc.get("rules", []) or []:
        if isinstance(rule, Mapping) and isinstance(rule.get("per_interface"), Mapping):
            for iface in rule["per_interface"]:
                names[(str(iface), str(rule.get("source", "")))] = str(rule.get("nlri") or rule.get("id", ""))
    return names


def samples_from(router: str, doc: Mapping[str, Any]) -> list[CounterSample]:
    """CounterSamples of one /counters document, attributed to `router` (the configuration's name)."""
    out = []
    names = _rule_names(doc)
    for s in doc.get("samples", []) or []:
        if not isinstance(s, Mapping):
            continue
        try:
            iface, prefix = str(s["interface"]), str(s["source_prefix"])
            out.append(CounterSample(router=router, interface=iface, source_prefix=prefix,
                                     action=str(s.get("action", "")), packets=int(s["packets"]),
                                     bytes=int(s["bytes"]), spoofed=bool(s.get("spoofed", True)),
                                     rule=names.get((iface, prefix), ""),
                                     top_sources=_top_sources(s.get("top_sources"))))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("event=enforcer-sample-invalid router=%s error=%r sample=%r", router, exc, s)
    return out


def _top_sources(raw: Any) -> tuple[tuple[str, int, int], ...]:
    """A sample's `top_sources` (a catch-all's actual sources); absent from older enforcers."""
    if not isinstance(raw, list):
        return ()
    return tuple((str(t["source"]), int(t["packets"]), int(t["bytes"]))
                 for t in raw if isinstance(t, Mapping))


def fetch(target: _Target, timeout_s: float = 10.0) -> dict[str, Any]:
    """The enforcer's /counters document (blocking), from a fresh listing of its table."""
    try:
        if target.url:
            with urllib.request.urlopen(target.url.rstrip("/") + "/counters", timeout=timeout_s) as resp:
                doc = json.loads(resp.read())
        elif target.netns:
            doc = _get_in_netns(target.netns, "/counters", timeout_s)
        else:
            raise PollError(target.router, "neither url nor netns configured")
    except (OSError, ValueError, http.client.HTTPException) as exc:
        where = f"netns {target.netns}: " if target.netns and not target.url else ""
        raise PollError(target.router, f"{where}{exc}") from exc
    if not isinstance(doc, dict):
        raise PollError(target.router, "counters document is not a JSON object")
    return doc


def _get_in_netns(netns: str, path: str, timeout_s: float) -> Any:
    """GET `path` from the enforcer's endpoint (127.0.0.1:9180, its default) inside `netns`, over a
    socket made there from this process (appliance/netns.py) rather than a process started there."""
    sock = run_in(netns, lambda: socket.create_connection(ENFORCER_ENDPOINT, timeout_s), "poll")
    conn = http.client.HTTPConnection(*ENFORCER_ENDPOINT, timeout=timeout_s)
    conn.sock = sock
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise ValueError(f"GET {path}: HTTP {resp.status} {body[:200]!r}")
        return json.loads(body)
    finally:
        conn.close()


class _Monitor(Protocol):
    def emit(self, notice: Notice) -> Any: ...


class _Context(Protocol):
    @property
    def monitor(self) -> _Monitor: ...

    def report_counters(self, samples: Iterable[CounterSample], router: str = "") -> None: ...


class EnforcerPoller:
    """A daemon component polling every configured enforcer every `interval_s`."""

    name = "enforcer-poller"

    def __init__(self, targets: Sequence[_Target], interval_s: float = 5.0,
                 fetcher: Callable[[_Target], dict[str, Any]] = fetch) -> None:
        self.targets = tuple(targets)
        self.interval_s = interval_s
        # a fresh listing every poll (no `?max_age`): the drift check trusts a difference seen in two
        # listings running, which two polls served the same cached reading would fake
        self._fetch = fetcher
        self._task: Periodic | None = None
        self._unreachable: set[str] = set()   # routers whose alarm is raised
        self._session_down: dict[str, str] = {}   # router -> diagnosis of its raised session alarm

    async def poll_once(self, ctx: _Context) -> int:
        """One round; returns how many enforcers answered."""
        answered = 0
        for target in self.targets:
            try:  # fetched and turned into samples off the event loop (10k routes: ~40 ms of parsing)
                doc, samples, keyed = await asyncio.to_thread(self._fetch_samples, target)
            except PollError as exc:
                log.warning("event=enforcer-poll-failed router=%s error=%r", target.router, str(exc))
                if target.router not in self._unreachable:
                    self._unreachable.add(target.router)
                    ctx.monitor.emit(EnforcerReachable(target.router, False, str(exc)[:300]))
                continue
            answered += 1
            if target.router in self._unreachable:
                self._unreachable.discard(target.router)
                ctx.monitor.emit(EnforcerReachable(target.router, True))
            began = time.perf_counter()
            notice = self._session_notice(target.router, doc.get("session"), time.time())
            if notice is not None:
                ctx.monitor.emit(notice)
            ctx.report_counters(samples, target.router)
            counted = time.perf_counter()
            report_rules = getattr(ctx, "report_rules", None)  # the daemon's: not-installed alarms
            if report_rules is not None:
                report_rules(target.router, keyed)
            done = time.perf_counter()
            log.debug("event=enforcer-polled router=%s rules=%d took_ms=%.1f counters_ms=%.1f rules_ms=%.1f",
                      target.router, len(keyed.entries), (done - began) * 1000, (counted - began) * 1000,
                      (done - counted) * 1000)
        return answered

    def _fetch_samples(self, target: _Target) -> tuple[dict[str, Any], list[CounterSample], ReportedRules]:
        doc = self._fetch(target)
        return doc, samples_from(target.router, doc), reported_rules(doc.get("rules") or [])

    def _session_notice(self, router: str, session: Any, now: float) -> EnforcerSessionDown | None:
        """Raise once the session has been down long enough (again when the diagnosis changes), clear
        when it is established; None otherwise or without a `session` object."""
        if not isinstance(session, Mapping):
            return None
        if session.get("established") is True:
            if self._session_down.pop(router, None) is None:
                return None
            return EnforcerSessionDown(router, down=False)
        since, diagnosis = session.get("down_since"), str(session.get("diagnosis") or "")
        if not isinstance(since, int | float) or now - since < SESSION_DOWN_AFTER_S \
                or self._session_down.get(router) == diagnosis:
            return None
        self._session_down[router] = diagnosis
        log.warning("event=enforcer-session-alarm router=%s down_for_s=%.0f diagnosis=%s", router,
                    now - since, diagnosis)
        return EnforcerSessionDown(router, down=True, reason=str(session.get("last_reason") or "")[:300],
                                   diagnosis=diagnosis, down_s=int(now - since))

    async def start(self, ctx: DaemonContext) -> None:
        async def round_() -> None:
            await self.poll_once(ctx)
        self._task = Periodic("enforcer-poller", self.interval_s, round_, at_once=True)
        self._task.start()

    async def stop(self) -> None:
        if self._task:
            await self._task.stop()
            self._task = None


def factory(ctx: DaemonContext) -> EnforcerPoller | None:
    """A poller when the configuration names enforcers."""
    targets = tuple(ctx.config.enforcers)
    return EnforcerPoller(targets) if targets else None
