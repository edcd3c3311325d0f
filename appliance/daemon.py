"""`savd run --config FILE`: the appliance daemon, wiring what stands on its own and leaving sockets
for the rest.

    config ──► Journal + StateStore (restored) ──► snapshot ──► [engine] ──► RulesHolder ──► [pusher]
                   ▲                                                │
       API, [speakers], [RTR], [files] apply Changes               rule listeners (pusher, enforcers)
                   │
    Monitor (bus, alarms, key=value log, Prometheus) ◄── every part emits notices

Built here: configuration, the state store with its journal (restored at start, checkpointed at stop),
the monitor and its exporters, the HTTP API (uvicorn on the same event loop, so API writes and protocol
events have one writer), the recompute loop and the component lifecycle. The bracketed parts plug in:
- `Daemon.set_engine(fn)`: fn(StateSnapshot) -> SavRuleSet (`savd run` uses `engine_from_config`: the
  real engine with the configuration's roles, neighbours and policy), run in a worker thread on a frozen
  snapshot after each change, at once when idle and at most once per `[timers] recompute_debounce_s`
  during a burst (appliance.recompute.RecomputeTimer); its result is published, journalled and passed to
  every `on_rules` listener (the pusher diffs it against what each peer holds: store.pushed(peer)).
- `Daemon.add(component)`: anything with `name`, `async start(ctx)` and `async stop()` (speakers, RTR
  managers, file watchers, enforcer pollers); started in order, stopped in reverse.
- appliance/wiring.py `components(ctx)`: the real ones (sources, speakers, enforcer poller), typed
  imports, in start order; the configuration decides which are there.
Nothing here pretends to be a speaker, an RTR session or an engine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import uvicorn

from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.config import Config, ConfigError, load_config
from appliance.context import Component, DaemonContext, StartError, flowspec_peers
from appliance.heap import HeapSettler
from appliance.model import Event, SavRuleSet, Severity
from appliance.monitor import Monitor, SystemClock
from appliance.monitor.clock import Clock
from appliance.monitor.counters import CounterBoard
from appliance.monitor.events import EventType, JournalWrite, Operational
from appliance.monitor.freshness import FreshnessWatch
from appliance.monitor.logfmt import LogSink
from appliance.monitor.metrics import Metrics
from appliance.monitor.stale import stale_findings
from appliance.monitor.syslog import SyslogSink, SyslogTarget
from appliance.sources.assemble import engine_input, steering_events
from appliance.speakers.holdover import claim_held_over
from appliance.state import Journal, StateError, StateErrorKind, StateSnapshot, StateStore
from appliance.state.journal import FILE_NAME
from appliance.state.rulesave import RulesetSaver
from appliance.wiring import components

log = logging.getLogger("savd.daemon")

Engine = Callable[[StateSnapshot], SavRuleSet]
Findings = Callable[[StateSnapshot], Iterable[Event]]


def engine_from_config(config: Config) -> Engine:
    """The real engine (appliance.engine) over the state's snapshot, completed by the configuration.

    Configuration facts that BGP-LS does not carry are merged at compute time rather than stored, so a
    changed configuration never leaves stale facts in the journal: reports resolved by precedence (api >
    file > bgp-ls, appliance.sources.reports.merge), router roles and capabilities
    ([[engine.router]] overrides what the state says, and adds routers it does not know), eBGP
    neighbours with their relationships ([[engine.neighbor]]), and the policy ([engine]).
    Incremental (appliance.recompute.ConfigEngine): each call applies the difference from the previous
    snapshot to one live engine; the rules equal a full `compute()` of the same snapshot.
    """
    from appliance.recompute import ConfigEngine

    return ConfigEngine(config)


#: Sections a reload applies without a restart ("appliance" only for its log level).
LIVE_SECTIONS = ("engine", "flowspec", "appliance", "steering")


def changed_sections(old: Config, new: Config) -> tuple[str, ...]:
    """Top-level sections whose values differ (typed ConfigChange, coarse: per section)."""
    names = ("appliance", "api", "speakers", "rpki", "reports", "engine", "flowspec", "enforcers", "bmp",
             "timers", "steering")
    changed = [n for n in names if getattr(old, n) != getattr(new, n)]
    if "appliance" in changed and dataclasses.replace(old.appliance, log_level=new.appliance.log_level) \
            != new.appliance:
        changed[changed.index("appliance")] = "appliance (data_dir, asn, router_id)"
    return tuple(changed)


#: at stop, requests still running after this long are cancelled: event streams never end by themselves
API_GRACE_S = 2


class _ApiServer(uvicorn.Server):
    """uvicorn without its signal handlers: savd owns SIGTERM/SIGINT and stops the API itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Daemon:
    def __init__(self, config: Config, clock: Clock | None = None, debounce_s: float | None = None,
                 tick_s: float = 5.0, reset_corrupt_journal: bool = False) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.debounce_s = config.timers.recompute_debounce_s if debounce_s is None else debounce_s
        self.tick_s = tick_s
        self.reset_corrupt_journal = reset_corrupt_journal
        self.components: list[Component] = []
        self.engine: Engine | None = None
        self.ctx: DaemonContext | None = None
        self.api_address: tuple[str, int] | None = None
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._dirty = asyncio.Event()
        self._journal: Journal | None = None
        self._syslog: SyslogSink | None = None
        self._saver: RulesetSaver  # set by run(), with the store
        self._engine_from_config = False
        self.findings: dict[str, Findings] = {}

    def add(self, component: Component) -> None:
        self.components.append(component)

    def add_findings(self, scope: str, findings: Findings) -> None:
        """A pure check run on each recompute; its alarm events are reconciled (raised/cleared) by scope."""
        self.findings[scope] = findings

    def set_engine(self, engine: Engine) -> None:
        self.engine = engine
        self._engine_from_config = False

    def use_config_engine(self) -> None:
        """Compute with `engine_from_config(self.config)`, rebuilt when the configuration is reloaded;
        report precedence and conflicts (appliance.sources.reports.merge) become findings "reports", the
        steering alarms (no inspector, scale out/in: sources/assemble.py steering_events) "steering".
        The report findings come from a resolver kept between recomputes: resolving 10k reports whole on
        the event loop cost ~230 ms before every recompute (one report change: its group only)."""
        from appliance.sources.reports.merge import ReportResolver

        self.engine = engine_from_config(self.config)
        self._engine_from_config = True
        reports = ReportResolver()
        self.add_findings("reports", lambda snap: reports(snap.reports).events)
        self.add_findings("steering", lambda snap: steering_events(self.config, snap))

    def reload(self) -> tuple[str, ...]:
        """Re-read the configuration (SIGHUP); returns the sections that changed.

        An invalid file is refused (error event naming each problem) and savd keeps running on the old
        one. A valid one applies [engine] (recompute) and the log level at once; sections that need a
        restart (speakers, API, RPKI sources, enforcers) are named in the event.
        """
        ctx = self.ctx
        if ctx is None:
            return ()
        try:
            new = load_config(self.config.source)
        except ConfigError as exc:
            problems = "; ".join(p.render(exc.source) for p in exc.problems)
            text = f"reload refused, still running on the previous configuration: {problems}"
            ctx.monitor.emit(Operational(EventType.DAEMON, "config", text, Severity.ERROR,
                                         extra=(("errors", str(len(exc.problems))),)))
            return ()
        changed = changed_sections(self.config, new)
        self.config = ctx.config = new
        logging.getLogger("savd").setLevel(new.appliance.log_level.upper())
        if ("engine" in changed or "steering" in changed) and self._engine_from_config:
            self.use_config_engine()
            self._dirty.set()
        restart = [s for s in changed if s not in LIVE_SECTIONS]
        note = f"; restart savd to apply {', '.join(restart)}" if restart else ""
        text = f"configuration reloaded: changed {', '.join(changed) or 'nothing'}{note}"
        ctx.monitor.emit(Operational(
            EventType.DAEMON, "config", text,
            Severity.WARNING if restart else Severity.INFO,
            extra=(("changed", ",".join(changed)), ("restart_needed", ",".join(restart))),
        ))
        return changed

    def stop(self) -> None:
        self._stop.set()

    # --- start-up ------------------------------------------------------------------------------------

    def _open_store(self) -> StateStore:
        """Open the journal and restore the state and the saved rule set.

        Only a CORRUPT journal is reset by `--reset-corrupt-journal`: a damaged saved rule set alone is
        discarded (it is derived: the first recompute rebuilds it from the state, which is kept), any
        other damage moves the file aside. An unwritable data dir or a full disk is never reset.
        """
        data_dir = self.config.appliance.data_dir
        try:
            self._journal = Journal.open(data_dir)
            store = StateStore.restore(self._journal, now=self.clock.now)
        except StateError as exc:
            self._close_journal()
            if not (self.reset_corrupt_journal and exc.kind is StateErrorKind.CORRUPT):
                raise
            return self._reset_journal(data_dir, exc)
        try:
            store.last_ruleset()
        except StateError as exc:
            if not (self.reset_corrupt_journal and exc.kind is StateErrorKind.CORRUPT):
                self._close_journal()
                raise
            assert self._journal is not None
            self._journal.discard_ruleset()
            log.critical("event=ruleset-reset path=%s reason=%r state_version=%d", exc.path, exc.reason,
                         store.version)
        return store

    def _close_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def _reset_journal(self, data_dir: Path, exc: StateError) -> StateStore:
        aside = data_dir / f"{FILE_NAME}.corrupt-{int(self.clock.now())}"
        (data_dir / FILE_NAME).rename(aside)
        for suffix in ("-wal", "-shm"):
            (data_dir / f"{FILE_NAME}{suffix}").unlink(missing_ok=True)
        log.critical("event=journal-reset path=%s moved_to=%s reason=%s", exc.path, aside, exc)
        self._journal = Journal.open(data_dir)
        return StateStore(self._journal, now=self.clock.now)

    def _build_context(self, store: StateStore) -> DaemonContext:
        monitor = Monitor(self.clock)
        monitor.bus.subscribe(LogSink())
        syslog = self.config.syslog
        if syslog.target:  # RFC 5424 beside the key=value log (monitor/syslog.py)
            self._syslog = SyslogSink(SyslogTarget.parse(syslog.target), syslog.facility, syslog.app_name,
                                      syslog.hostname, syslog.min_severity)
            monitor.bus.subscribe(self._syslog)
        counters = CounterBoard()
        metrics = Metrics(monitor, counters)
        rules = RulesHolder(store.last_ruleset())
        alarm_on_journal_failure(store, monitor)
        metrics.add_gauge("savd_state_version", "Version of the input state", (), lambda: {(): store.version})
        metrics.add_gauge("savd_facts", "Input facts held, by kind", ("kind",),
                          lambda: {(k,): float(n) for k, n in store.snapshot().counts().items()})
        metrics.add_gauge("savd_rules", "Interfaces with a SAV rule in force", (),
                          lambda: {(): float(len(c[1].rules)) if (c := rules.current()) else 0.0})
        metrics.add_gauge("savd_flowspec_rules_held", "FlowSpec rules each peer holds, as pushed", ("peer",),
                          lambda: {(p,): float(n) for p, n in store.pushed_counts().items()})
        board = RpkiStatusBoard()
        for name, help_text, field in RTR_GAUGES:
            metrics.add_gauge(name, help_text, ("cache",), functools.partial(_rtr_gauge, board, field))
        metrics.add_gauge("savd_rpki_last_update_timestamp_seconds", "When each RPKI source last delivered "
                          "data (Unix time)", ("source",),
                          lambda: {(s,): t for s, t in _rpki_updates(board.rpki_status()).items() if t})
        return DaemonContext(self.config, store, monitor, counters, metrics, rules, board)

    def _load_components(self, ctx: DaemonContext) -> None:
        for component in components(ctx):
            self.add(component)

    async def _serve_api(self, ctx: DaemonContext) -> tuple[uvicorn.Server, asyncio.Task[None]]:
        ports = ApiPorts(ctx.store, ctx.rules, ctx.rpki, PushedRules(ctx.store), ctx.monitor, ctx.counters,
                         ctx.metrics, inputs=lambda snap: engine_input(self.config, snap),
                         inspectors=lambda snap: self.config.steering.inspectors,
                         agreements=ctx.agreements, end_agreement=ctx.end_agreement,
                         allow_peer=ctx.allow_peer)
        app = create_app(ports, self.config.api)
        host, port = self.config.api.host, self.config.api.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:  # bind here: a busy port is our clear OSError, not uvicorn's sys.exit
            sock = socket.create_server((host, port), family=family, backlog=2048)
        except OSError as exc:
            raise OSError(exc.errno, f"API on {host}:{port}: {exc.strerror}") from exc
        server = _ApiServer(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=API_GRACE_S))
        task = asyncio.create_task(server.serve(sockets=[sock]), name="api")
        deadline = time.monotonic() + 10.0
        while not server.started:
            if task.done():
                sock.close()
                raise OSError(f"API server on {host}:{port} stopped while starting")
            if time.monotonic() > deadline:
                raise TimeoutError("API server did not start within 10 s")
            await asyncio.sleep(0.02)
        name = sock.getsockname()
        self.api_address = (str(name[0]), int(name[1]))
        return server, task

    # --- the run loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until `stop()` (or SIGTERM/SIGINT via `main`); raises StateError or OSError at start-up."""
        store = self._open_store()
        ctx = self.ctx = self._build_context(store)
        self._saver = RulesetSaver(store)
        store.subscribe(lambda applied, change: self._dirty.set())
        try:
            self._load_components(ctx)
            server, api_task = await self._serve_api(ctx)
        except BaseException:
            if self._journal is not None:
                self._journal.close()
            raise
        started: list[Component] = []
        background: list[asyncio.Task[None]] = []
        try:
            for component in self.components:
                try:
                    await component.start(ctx)
                except StartError as exc:  # it said why in one line: no traceback
                    log.error("event=component-start-failed component=%s error=%r", component.name, str(exc))
                    raise
                except Exception as exc:  # a component that cannot start: a clear message, not a traceback
                    log.exception("event=component-start-failed component=%s", component.name)
                    raise StartError(f"component {component.name} did not start: {exc}") from exc
                started.append(component)
            background = [asyncio.create_task(self._recompute_loop(ctx), name="recompute"),
                          asyncio.create_task(self._tick_loop(ctx), name="tick")]
            if (self.engine is not None or self.findings) and store.version > 0:
                self._dirty.set()  # restored state: bring the rules up to date
            self._announce_start(ctx)
            self.ready.set()
            await self._stop.wait()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            for component in reversed(started):
                try:
                    await component.stop()
                except Exception:
                    log.exception("event=component-stop-failed component=%s", component.name)
            server.should_exit = True
            await asyncio.gather(api_task, return_exceptions=True)
            ctx.monitor.emit(Operational(EventType.DAEMON, "daemon", "savd stopped"))
            if self._syslog is not None:
                self._syslog.close()
            await self._saver.flush()
            try:
                store.checkpoint()
            except StateError as exc:  # the inputs since the last checkpoint stay journalled: nothing lost
                log.error("event=checkpoint-failed path=%s kind=%s reason=%r", exc.path, exc.kind, exc.reason)
            if self._journal is not None:
                self._journal.close()

    def _announce_start(self, ctx: DaemonContext) -> None:
        host, port = self.api_address or ("", 0)
        current = ctx.rules.current()
        ctx.monitor.emit(Operational(
            EventType.STATE_RESTORED, "daemon", f"state restored at version {ctx.store.version}",
            extra=(("state_version", str(ctx.store.version)),
                   ("rules_version", str(current[0]) if current else "none")),
        ))
        if not self.config.api.token:
            ctx.monitor.emit(Operational(EventType.DAEMON, "api",
                                         "no API token configured: writes are refused", Severity.WARNING))
        ctx.monitor.emit(Operational(
            EventType.DAEMON, "daemon", f"savd running, API on http://{host}:{port}",
            extra=(("api", f"http://{host}:{port}"),
                   ("components", ",".join(c.name for c in self.components))),
        ))

    async def _recompute_loop(self, ctx: DaemonContext) -> None:
        """After state changes: run the findings, then compute rules from a frozen snapshot in a worker
        thread and publish them. A lone change goes at once; in a burst, changes coalesce into one
        recompute per `debounce_s` (RecomputeTimer)."""
        from appliance.recompute import RecomputeTimer

        loop = asyncio.get_running_loop()
        timer = RecomputeTimer(self.debounce_s)
        heap = HeapSettler()
        while True:
            await self._dirty.wait()
            delay = timer.delay(loop.time())
            if delay > 0:
                await asyncio.sleep(delay)
            self._dirty.clear()
            timer.started(loop.time())
            snapshot = ctx.store.snapshot()
            for scope, findings in self.findings.items():
                try:
                    ctx.monitor.reconcile(scope, findings(snapshot))
                except Exception:
                    log.exception("event=findings-failed scope=%s version=%d", scope, snapshot.version)
            if self.engine is None:
                continue
            started = time.perf_counter()
            try:
                ruleset = await loop.run_in_executor(None, self.engine, snapshot)
            except Exception as exc:  # fail open: keep the rules in force, say why
                log.exception("event=engine-failed version=%d", snapshot.version)
                ctx.monitor.emit(Operational(EventType.RULES_CHANGED, "engine",
                                             f"compute failed at version {snapshot.version}: {exc}",
                                             Severity.ERROR))
                continue
            await self._publish(ctx, snapshot.version, ruleset)
            heap.after_recompute(time.perf_counter() - started)

    async def _publish(self, ctx: DaemonContext, version: int, ruleset: SavRuleSet) -> None:
        old_current = ctx.rules.current()
        old = old_current[1] if old_current else SavRuleSet()
        change = old.diff(ruleset)
        ctx.rules.publish(version, ruleset)
        if not change.empty():
            ctx.monitor.emit(Operational(
                EventType.RULES_CHANGED, "engine", f"rules at version {version}: {len(change.added)} added, "
                f"{len(change.removed)} removed, {len(change.changed)} changed",
                extra=(("version", str(version)), ("added", str(len(change.added))),
                       ("removed", str(len(change.removed))), ("changed", str(len(change.changed)))),
            ))
        for listener in tuple(ctx.rules_listeners):
            try:
                await listener(version, ruleset, old)
            except Exception:
                log.exception("event=rules-listener-failed version=%d", version)
        # journalled after the routers have them, in the background (state/rulesave.py)
        self._saver.submit(version, ruleset)

    async def _tick_loop(self, ctx: DaemonContext) -> None:
        """Periodic checks: spoofing alarms whose counters went quiet, RPKI data going stale, and the rules
        resting on stale RPKI data (stale.rule alarms, monitor/stale.py)."""
        rpki = self.config.rpki
        freshness = FreshnessWatch(rpki.stale_after_s, rpki.expire_after_s)
        while True:
            await asyncio.sleep(self.tick_s)
            now = self.clock.now()
            for notice in ctx.counters.tick(now):
                ctx.monitor.emit(notice)
            for fresh in freshness.check(_rpki_updates(ctx.rpki.rpki_status()), now):
                ctx.monitor.emit(fresh)
            current = ctx.rules.current()  # rules resting on stale RPKI: flagged, still in force
            ctx.monitor.reconcile_notices("stale-rules", stale_findings(
                current[1] if current else SavRuleSet(), freshness.stale_sources()))


#: (name, help, CacheStatus field) of the per-cache RTR gauges
RTR_GAUGES = (
    ("savd_rtr_cache_in_sync", "1 while the RTR session to the cache is in sync, else 0", "state"),
    ("savd_rtr_cache_serial", "Serial of the cache's data savd holds", "serial"),
    ("savd_rtr_cache_vrps", "VRPs held from the cache", "vrps"),
    ("savd_rtr_cache_aspas", "ASPAs held from the cache", "aspas"),
)


def _rtr_gauge(board: RpkiStatusBoard, field: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for cache in board.rpki_status().get("caches", ()):
        value = cache.get(field)
        if field == "state":
            out[(str(cache.get("name")),)] = 1.0 if value == "in-sync" else 0.0
        elif isinstance(value, int | float):
            out[(str(cache.get("name")),)] = float(value)
    return out


def _rpki_updates(status: Mapping[str, Any]) -> dict[str, float | None]:
    """Last update time of each RPKI source in an RpkiPort status ("rtr:<cache>", "file:<path>")."""
    out: dict[str, float | None] = {}
    for kind, key in (("caches", "rtr"), ("files", "file")):
        for item in status.get(kind, ()):
            name = item.get("name") or item.get("path")
            last = item.get("last_update")
            if name:
                out[f"{key}:{name}"] = float(last) if isinstance(last, int | float) else None
    return out


# --- CLI -----------------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("run", help="run the appliance daemon")
    parser.add_argument("--config", required=True, help="path of the TOML configuration")
    parser.add_argument("--reset-corrupt-journal", action="store_true",
                        help="move an unreadable journal aside and start with empty state")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # one line per problem, with file, line and key
        return 2
    for name in ("savd", "appliance", "rpki"):  # the wired components log under their module names
        logging.getLogger(name).setLevel(config.appliance.log_level.upper())
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for workdir in claim_held_over(config.appliance.data_dir / "speakers"):
        log.info("event=speaker-claimed workdir=%s", workdir)  # adopted (or ended) once the speakers start
    daemon = Daemon(config, reset_corrupt_journal=args.reset_corrupt_journal)
    daemon.use_config_engine()
    try:
        asyncio.run(_run_with_signals(daemon))
    except StateError as exc:
        print(f"savd: {exc}", file=sys.stderr)
        print(f"savd: {_state_error_hint(exc, config.appliance.data_dir)}", file=sys.stderr)
        return 3
    except (OSError, StartError) as exc:
        print(f"savd: cannot start: {exc}", file=sys.stderr)
        return 4
    return 0


def _state_error_hint(exc: StateError, data_dir: Path) -> str:
    """What to do about a journal savd cannot start with: only a corrupt one is reset."""
    if exc.kind is StateErrorKind.UNWRITABLE:
        return (f"savd must be able to write {data_dir} and the journal in it: fix their owner or mode, or "
                "remount read-write (--reset-corrupt-journal would not help)")
    if exc.kind is StateErrorKind.DISK_FULL:
        return f"free space on the file system of {data_dir}, then start again"
    if exc.kind is StateErrorKind.IO:
        return f"check the disk and the file system of {data_dir} (I/O error), then start again"
    return (f"fix or remove the journal in {data_dir}, or start with --reset-corrupt-journal to move it "
            "aside (a damaged saved rule set alone is discarded and recomputed; the state is kept)")


def alarm_on_journal_failure(store: StateStore, monitor: Monitor) -> None:
    """A failed journal write raises the journal alarm (critical: /health is degraded and inputs are
    refused until writes work); the first successful write after it clears the alarm."""

    def watch(error: StateError | None) -> None:
        if error is None:
            monitor.emit(JournalWrite(store.journal.path if store.journal else "", ok=True))
        else:
            monitor.emit(JournalWrite(error.path, ok=False, kind=str(error.kind), reason=error.reason))

    store.watch_journal(watch)


async def _run_with_signals(daemon: Daemon) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stop)
    loop.add_signal_handler(signal.SIGHUP, daemon.reload)
    try:
        await daemon.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


__all__ = ["Component", "Daemon", "DaemonContext", "Engine", "StartError", "engine_from_config",
           "flowspec_peers", "register"]
