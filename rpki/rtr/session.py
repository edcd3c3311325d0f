"""One RTR cache session: the router side of RFC 6810 / RFC 8210 / draft-ietf-sidrops-8210bis.

Owns the state machine, the timers and the per-cache data; the codec is rpki/rtr/pdu.py, the bulk data
path rpki/rtr/ingest.py, the socket rpki/rtr/transport.py. It must never hand out half an update: the
data PDUs of a Cache Response are collected in a `Pending` and applied at End of Data or dropped.

    connect -> Reset Query (Serial Query if `serial_query_on_reconnect` and a session is known)
      Cache Response -> data PDUs -> End of Data: apply atomically, arm refresh / expire timers
      Serial Notify (idle) -> Serial Query;  refresh timer -> Serial Query
      Serial Notify before the first response PDU -> skipped (it does not fix the version)
      Cache Reset -> Reset Query;  Error Report "No Data Available" -> retry later (not fatal)
      Error Report "Unsupported Protocol Version" before negotiation -> reconnect one version lower
      bad PDU -> send Error Report, drop the pending update, close, retry with Reset Query
      any failure -> reconnect after a backoff: 1 s, doubling, at most the retry interval
    expire timer (no successful update for `expire` s) -> data withdrawn, alarm event

`run()` lets only bugs escape (an exception no protocol rule foresees); RtrManager supervises it, and runs
`expire_watchdog()` as a task of its own, so stale data expires (fail open) even while `run()` is dead.
Data kept across reconnects is replaced only by a successful End of Data, or dropped by the expire timer.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.model import Event, Severity
from rpki.keys import KeySet
from rpki.rtr.ingest import AspaKey, Pending, aspa_pdu, ingest, key_pdu
from rpki.rtr.pdu import (
    SUPPORTED_VERSIONS,
    CacheReset,
    CacheResponse,
    EndOfData,
    ErrorCode,
    ErrorReport,
    Pdu,
    PduError,
    PduType,
    ResetQuery,
    SerialNotify,
    SerialQuery,
    encode,
    error_report,
    frame_length,
)
from rpki.rtr.transport import Connector, tcp_connect

log = logging.getLogger(__name__)

# RFC 8210 section 6: defaults and allowed ranges of the timers in End of Data.
DEFAULT_REFRESH_S, DEFAULT_RETRY_S, DEFAULT_EXPIRE_S = 3600.0, 600.0, 7200.0
REFRESH_RANGE, RETRY_RANGE, EXPIRE_RANGE = (1, 86400), (1, 7200), (600, 172800)
BACKOFF_FIRST_S = 1.0  # first reconnect delay after a failure; doubles per failure, capped at retry_s


SESSION_EVENT = "rtr-session"  # the monitor's EventType.RTR_SESSION
EXPIRED_EVENT = "rpki-expired"  # the monitor's EventType.RPKI_EXPIRED


class CacheState(enum.StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    SYNCING = "syncing"
    IN_SYNC = "in-sync"
    ERROR_NO_DATA = "error-no-data"
    ERROR_TRANSPORT = "error-transport"
    ERROR_FATAL = "error-fatal"
    EXPIRED = "expired"
    STOPPED = "stopped"


_DOWN_STATES = frozenset({"error-no-data", "error-transport", "error-fatal"})


# mid-response reads smaller than this wait COALESCE_S for more (see _serve)
COALESCE_BELOW = 64 << 10
COALESCE_S = 0.002

@dataclass(frozen=True, slots=True)
class CacheConfig:
    """One cache. Timer overrides (seconds) win over the cache's End of Data values (tests, operators)."""

    host: str
    port: int
    preference: int = 1
    name: str = ""
    max_version: int = 2
    refresh_s: float | None = None
    retry_s: float | None = None
    expire_s: float | None = None
    connect_timeout_s: float = 5.0
    response_timeout_s: float = 60.0
    backoff_first_s: float = BACKOFF_FIRST_S
    """First reconnect delay after a failure; doubles per failure in a row, capped at the retry interval."""
    read_size: int = 4 << 20
    serial_query_on_reconnect: bool = False
    """RFC 8210 allows resuming with a Serial Query, but StayRTR 0.5.1 may reuse its session id after a
    restart (seen here: two starts within ~1 s answered with the same id), so serial 0 of the new
    process would look like serial 0 of the old one and the changed data would never arrive. By default
    a new connection starts with a Reset Query; the swap at End of Data still publishes only the diff."""

    @property
    def label(self) -> str:
        return self.name or f"{self.host}:{self.port}"

    @staticmethod
    def parse(spec: str, **kwargs: Any) -> CacheConfig:
        """'host:port', '[v6]:port', optionally '@preference'; ValueError naming the spec."""
        text, _, pref = spec.partition("@")
        host, sep, port = text.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"cache {spec!r}: want host:port[@preference]")
        if pref and not pref.isdigit():
            raise ValueError(f"cache {spec!r}: preference must be an integer")
        return CacheConfig(host, int(port), int(pref or 1), **kwargs)


@dataclass(frozen=True, slots=True)
class CacheStatus:
    name: str
    preference: int
    state: CacheState
    version: int | None
    session_id: int | None
    serial: int | None
    last_update: float | None
    vrps: int
    aspas: int
    refresh_s: float
    retry_s: float
    expire_s: float
    last_error: str
    active: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, enum.Enum) else v) for k, v in _fields(self).items()}


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


class SessionListener(Protocol):
    def cache_updated(self, session: CacheSession, added: KeySet, removed: KeySet) -> None: ...
    def cache_withdrawn(self, session: CacheSession) -> None: ...
    def cache_event(self, event: Event) -> None: ...


def _raise_if_cancelled() -> None:
    """A cancel that races a timeout can surface as TimeoutError (Python 3.11); never swallow it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class _Retry(Exception):
    """Leave the connection; reconnect after `delay_s`."""

    def __init__(self, state: CacheState, reason: str, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.state, self.reason, self.delay_s = state, reason, delay_s


class CacheSession:
    """The session with one cache. `run()` loops until cancelled; data is read via attributes."""

    def __init__(
        self,
        config: CacheConfig,
        listener: SessionListener,
        connector: Connector = tcp_connect,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.listener = listener
        self.connector = connector
        self.wallclock = wallclock
        self.state = CacheState.IDLE
        self.version: int | None = None
        self._try_version = config.max_version
        self.session_id: int | None = None
        self.serial: int | None = None
        self.vrps: KeySet = frozenset()
        self.aspas: dict[AspaKey, tuple[int, ...]] = {}
        self.last_update: float | None = None
        self._last_update_mono: float | None = None
        self.refresh_s = config.refresh_s or DEFAULT_REFRESH_S
        self.retry_s = config.retry_s or DEFAULT_RETRY_S
        self.expire_s = config.expire_s or DEFAULT_EXPIRE_S
        self.last_error = ""
        self.synced = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._outstanding = False
        self._expect_full = True
        self._refresh_at = 0.0
        self._down_alarm: bool | None = None  # None: never up nor down yet
        self._failures = 0  # failed connections in a row, for the reconnect backoff
        self.cache_resets = 0

    @property
    def name(self) -> str:
        return self.config.label

    @property
    def has_data(self) -> bool:
        return self._last_update_mono is not None

    def aspa_by_customer(self) -> dict[int, tuple[int, ...]]:
        """ASPAs per customer; the legacy layout's per-AFI sets are united."""
        merged: dict[int, set[int]] = {}
        for (customer, _afi), providers in self.aspas.items():
            merged.setdefault(customer, set()).update(providers)
        return {c: tuple(sorted(p)) for c, p in merged.items()}

    def status(self, active: bool = False) -> CacheStatus:
        return CacheStatus(
            self.name, self.config.preference, self.state, self.version, self.session_id, self.serial,
            self.last_update, len(self.vrps), len(self.aspa_by_customer()), self.refresh_s, self.retry_s,
            self.expire_s, self.last_error, active,
        )

    # --- main loop -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve and reconnect until cancelled.

        Transport errors, malformed PDUs and the cache's Error Reports end a connection, never this loop;
        an exception escaping it is a bug, which RtrManager logs, alarms and restarts.
        """
        loop = asyncio.get_running_loop()
        try:
            while True:
                connected_at = loop.time()
                delay: float | None = None
                try:
                    await self._connect_and_serve()
                except _Retry as exc:
                    self._set_state(exc.state, exc.reason)
                    delay = exc.delay_s
                except (OSError, EOFError, TimeoutError) as exc:
                    _raise_if_cancelled()
                    self._set_state(CacheState.ERROR_TRANSPORT, f"{type(exc).__name__}: {exc}")
                if delay is None:
                    delay = self._backoff(loop.time() - connected_at)
                log.info("rtr.reconnect cache=%s in_s=%.2f state=%s", self.name, delay, self.state)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.state = CacheState.STOPPED
            raise

    def _backoff(self, connection_s: float) -> float:
        """Delay before the next connection: `backoff_first_s`, doubling per failure in a row, at most the
        retry interval. A connection that lasted longer than that cap was healthy: the count restarts, so
        a cache that keeps sending a bad PDU right after the sync is retried ever more slowly."""
        if connection_s >= self.retry_s:
            self._failures = 0
        self._failures += 1
        return min(self.retry_s, self.config.backoff_first_s * 2.0 ** min(self._failures - 1, 30))

    def task_died(self, error: str) -> None:
        """RtrManager's note that `run()` ended with a bug: the session is down until restarted."""
        self._writer = None
        self._outstanding = False
        self._set_state(CacheState.ERROR_FATAL, f"session task died: {error}")

    async def _connect_and_serve(self) -> None:
        self._set_state(CacheState.CONNECTING, "")
        c = self.config
        reader, writer = await self.connector(c.host, c.port, c.connect_timeout_s)
        self._writer = writer
        try:
            await self._serve(reader)
        finally:
            self._writer = None
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (OSError, TimeoutError):
                pass

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        resume = self.config.serial_query_on_reconnect and self.version is not None
        if not resume:
            self.version = None  # a Reset Query negotiates afresh, whatever an earlier connection used
        await self._query(full=not resume)
        buf = b""
        pending: Pending | None = None
        loop = asyncio.get_running_loop()
        while True:
            timeout = self.config.response_timeout_s if self._outstanding else self._refresh_at - loop.time()
            try:  # asyncio.timeout, not wait_for: no task per read (a full table comes in ~40k reads)
                async with asyncio.timeout(max(timeout, 0.0)):
                    chunk = await reader.read(self.config.read_size)
            except TimeoutError:
                _raise_if_cancelled()
                if self._outstanding:
                    raise _Retry(CacheState.ERROR_TRANSPORT, "no response from cache") from None
                await self._query(full=False)
                continue
            if not chunk:
                raise _Retry(CacheState.ERROR_TRANSPORT, "connection closed by cache")
            data = buf + chunk if buf else chunk
            offset = 0
            try:
                while True:
                    if self.version is None:
                        offset = self._negotiate(data, offset)
                        if self.version is None:
                            break  # the first response PDU has not arrived yet
                    offset, pdu = ingest(data, offset, self.version, pending)
                    if pdu is None:
                        break
                    pending = await self._handle(pdu, pending)
            except PduError as exc:
                await self._send_error(exc)
            buf = data[offset:]
            if pending is not None and len(chunk) < COALESCE_BELOW:
                # mid-response and the cache writes in small pieces (StayRTR: ~100k writes for a full
                # table): let them gather, so each pass over the data handles thousands of PDUs, not five
                await asyncio.sleep(COALESCE_S)

    # --- PDU handling ----------------------------------------------------------------------------------

    def _negotiate(self, data: bytes, offset: int) -> int:
        """Fix the version from the cache's first response PDU (RFC 8210 section 7); return the offset
        to go on from. `self.version` stays None while that PDU's header is incomplete.

        Serial Notify PDUs before it are skipped, whatever their version: StayRTR 0.5.1 sends version-0
        notifies to a client whose Reset Query it has not read yet, and taking their version made a v2
        session fail and come back as v0 (containerlab/sav-inter ran StayRTR with -notifications=false
        for it). A notify carries nothing that the answer to the query already sent will not bring.
        """
        while len(data) - offset >= 8:
            cache_version, ptype = data[offset], data[offset + 1]
            if ptype != PduType.SERIAL_NOTIFY:
                break
            length = frame_length(data, offset) or 0
            if length != 12:
                raise PduError(ErrorCode.CORRUPT_DATA, f"Serial Notify length {length}",
                               bytes(data[offset : offset + min(length, 64)]))
            if len(data) - offset < length:
                return offset
            log.info("rtr.early_notify cache=%s version=%d asked=%d", self.name, cache_version,
                     self._try_version)
            offset += length
        if len(data) - offset < 8:
            return offset
        cache_version, ptype = data[offset], data[offset + 1]
        if ptype == PduType.ERROR_REPORT:
            self.version = min(cache_version, self._try_version)  # decoded as an Error Report below
            return offset
        if cache_version > self._try_version or cache_version not in SUPPORTED_VERSIONS:
            raise PduError(ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, f"cache answered version {cache_version}",
                           bytes(data[offset : offset + 8]))
        self.version = cache_version
        log.info("rtr.version cache=%s version=%d asked=%d", self.name, cache_version, self._try_version)
        return offset

    async def _handle(self, pdu: Pdu, pending: Pending | None) -> Pending | None:
        if isinstance(pdu, CacheResponse):
            if pending is not None:
                raise PduError(ErrorCode.CORRUPT_DATA, "Cache Response inside a response", encode(pdu))
            if not self._expect_full and pdu.session_id != self.session_id:
                self.session_id = None  # RFC 8210 section 5.1: new session -> start over with Reset Query
                raise PduError(ErrorCode.CORRUPT_DATA, f"session id changed to {pdu.session_id}", encode(pdu))
            self._set_state(CacheState.SYNCING, "")
            return Pending(self._expect_full, pdu.session_id)
        if isinstance(pdu, EndOfData):
            if pending is None:
                raise PduError(ErrorCode.CORRUPT_DATA, "End of Data without Cache Response", encode(pdu))
            if pdu.session_id != pending.session_id:
                raise PduError(ErrorCode.CORRUPT_DATA, "End of Data for another session", encode(pdu))
            self._apply(pending, pdu)
            return None
        if isinstance(pdu, SerialNotify):
            if not self._outstanding and pending is None and self.session_id is not None:
                await self._query(full=False)
            return pending
        if isinstance(pdu, CacheReset):
            self.cache_resets += 1
            log.info("rtr.cache_reset cache=%s serial=%s", self.name, self.serial)
            await self._query(full=True)
            return None
        if isinstance(pdu, ErrorReport):
            self._received_error(pdu)
        text = f"unexpected PDU from cache: {type(pdu).__name__}"
        raise PduError(ErrorCode.INVALID_REQUEST, text, encode(pdu))

    def _apply(self, pending: Pending, eod: EndOfData) -> None:
        """Swap in the new data of this cache; raise PduError (nothing applied) on an inconsistent update."""
        version = self.version or 0
        old = self.vrps
        if pending.full:
            if pending.withdrawn:
                key = next(iter(pending.withdrawn))
                raise PduError(ErrorCode.WITHDRAWAL_OF_UNKNOWN_RECORD, "withdrawal in a Reset response",
                               key_pdu(version, key, False))
            new: KeySet = pending.announced
            added, removed = (new, frozenset()) if not old else (new - old, old - new)
            aspas = self._replay_aspas({}, pending)
        else:
            duplicate = pending.announced & old
            if duplicate:
                key = next(iter(duplicate))
                raise PduError(ErrorCode.DUPLICATE_ANNOUNCEMENT, "record already announced",
                               key_pdu(version, key))
            unknown = pending.withdrawn - old
            if unknown:
                key = next(iter(unknown))
                raise PduError(ErrorCode.WITHDRAWAL_OF_UNKNOWN_RECORD, "withdrawal of unknown record",
                               key_pdu(version, key, False))
            added, removed = pending.announced, pending.withdrawn
            new = (old - removed) | added if (added or removed) else old
            aspas = self._replay_aspas(dict(self.aspas), pending)
        self.vrps, self.aspas = new, aspas
        self.session_id, self.serial = eod.session_id, eod.serial
        self._timers(eod)
        self.last_update = self.wallclock()
        loop = asyncio.get_running_loop()
        self._last_update_mono = loop.time()
        self._refresh_at = loop.time() + self.refresh_s
        self._outstanding = False
        self._set_state(CacheState.IN_SYNC, "")
        self.synced.set()
        log.info("rtr.end_of_data cache=%s version=%d session=%d serial=%d full=%s vrps=%d added=%d "
                 "removed=%d aspas=%d", self.name, version, eod.session_id, eod.serial, pending.full,
                 len(new), len(added), len(removed), len(aspas))
        self.listener.cache_updated(self, added, removed)

    def _replay_aspas(
        self, aspas: dict[AspaKey, tuple[int, ...]], pending: Pending
    ) -> dict[AspaKey, tuple[int, ...]]:
        """Apply the ASPA PDUs in order. An announcement replaces the customer's providers (8210bis).

        A withdrawal naming providers other than the current ones withdraws a version already replaced:
        StayRTR 0.5.1 sends "announce new" then "withdraw old" for a changed ASPA; it is ignored.
        """
        version = self.version or 0
        for announce, key, providers in pending.aspa_ops:
            if announce:
                aspas[key] = providers
            elif key not in aspas:
                raise PduError(ErrorCode.WITHDRAWAL_OF_UNKNOWN_RECORD, "withdrawal of unknown ASPA",
                               aspa_pdu(version, key, providers, False))
            elif not providers or aspas[key] == providers:
                del aspas[key]
        return aspas

    def _timers(self, eod: EndOfData) -> None:
        def pick(override: float | None, sent: int | None, bounds: tuple[int, int], current: float) -> float:
            if override:
                return override
            if sent is None:
                return current
            return float(min(max(sent, bounds[0]), bounds[1]))

        c = self.config
        self.refresh_s = pick(c.refresh_s, eod.refresh, REFRESH_RANGE, self.refresh_s)
        self.retry_s = pick(c.retry_s, eod.retry, RETRY_RANGE, self.retry_s)
        self.expire_s = pick(c.expire_s, eod.expire, EXPIRE_RANGE, self.expire_s)

    def _received_error(self, report: ErrorReport) -> None:
        """React to the cache's Error Report; never answer it with another (RFC 8210 section 5.11)."""
        text = f"cache error {report.code}: {report.text}"
        self._event(SESSION_EVENT, Severity.WARNING, text, detail="error-report-received",
                    code=str(report.code))
        if report.code == ErrorCode.NO_DATA_AVAILABLE:
            raise _Retry(CacheState.ERROR_NO_DATA, text)
        if report.code in (ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, ErrorCode.UNEXPECTED_PROTOCOL_VERSION):
            asked = self._try_version if self.version is None or self.session_id is None else self.version
            lower = report.version if report.version < asked else asked - 1
            if lower >= 0:
                self._try_version, self.version, self.session_id = lower, None, None
                self._event(SESSION_EVENT, Severity.INFO, f"retrying with RTR version {lower}",
                            detail="version-downgrade", version=str(lower))
                raise _Retry(CacheState.CONNECTING, text, delay_s=0.0)
        raise _Retry(CacheState.ERROR_FATAL, text)

    async def _send_error(self, exc: PduError) -> None:
        """Report `exc` to the cache, drop the pending update and close (all our errors are fatal)."""
        version = self.version if self.version is not None else self._try_version
        log.warning("rtr.error_sent cache=%s code=%s text=%r", self.name, exc.code.name, exc.text)
        if self._writer is not None:
            try:
                self._writer.write(error_report(version, exc.code, exc.text, exc.pdu))
                await asyncio.wait_for(self._writer.drain(), 2.0)
            except (OSError, TimeoutError):
                pass
        self._event(SESSION_EVENT, Severity.ERROR, f"sent Error Report {exc.code.name}: {exc.text}",
                    detail="error-report-sent", code=str(int(exc.code)))
        if exc.code is not ErrorCode.UNSUPPORTED_PROTOCOL_VERSION:
            self.session_id = None  # the next connection starts with a Reset Query
        if exc.code in (ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, ErrorCode.UNEXPECTED_PROTOCOL_VERSION):
            self.version = None  # a version mix-up: the next connection negotiates again
        raise _Retry(CacheState.ERROR_FATAL, f"sent {exc.code.name}: {exc.text}")

    async def _query(self, full: bool) -> None:
        assert self._writer is not None
        version = self.version if self.version is not None else self._try_version
        if full or self.session_id is None or self.serial is None:
            pdu: Pdu = ResetQuery(version)
            full = True
        else:
            pdu = SerialQuery(version, self.session_id, self.serial)
        self._expect_full = full
        self._outstanding = True
        self._writer.write(encode(pdu))
        await self._writer.drain()
        log.debug("rtr.query cache=%s pdu=%s", self.name, type(pdu).__name__)

    # --- expiry ----------------------------------------------------------------------------------------

    async def expire_watchdog(self) -> None:
        """Withdraw the data once no update came for `expire_s`. Runs as its own task (RtrManager), not
        inside `run()`: a session that dies must not take the expiry of its data with it."""
        loop = asyncio.get_running_loop()
        while True:
            if self._last_update_mono is None:
                await asyncio.sleep(0.25)
                continue
            remaining = self._last_update_mono + self.expire_s - loop.time()
            if remaining > 0:
                await asyncio.sleep(min(remaining, 1.0))
                continue
            self._expire()

    def _expire(self) -> None:
        age = self.wallclock() - (self.last_update or 0.0)
        self.vrps, self.aspas = frozenset(), {}
        self.session_id = self.serial = None
        self._last_update_mono = None
        self.synced.clear()
        self._set_state(CacheState.EXPIRED, f"no update for {age:.1f} s (expire {self.expire_s:.0f} s)")
        self._event(EXPIRED_EVENT, Severity.CRITICAL,
                    f"RPKI data from rtr:{self.name} expired (no update for {age:.0f} s): withdrawn",
                    alarm=True, alarm_id=f"rpki-stale/rtr:{self.name}", expire_s=f"{self.expire_s:g}")
        self.listener.cache_withdrawn(self)

    # --- helpers ---------------------------------------------------------------------------------------

    def _set_state(self, state: CacheState, reason: str) -> None:
        if self.state is CacheState.EXPIRED and state not in (CacheState.SYNCING, CacheState.IN_SYNC):
            state = CacheState.EXPIRED  # keep the alarm state visible until data comes back
        if reason:
            self.last_error = reason
        if state is not self.state:
            log.info("rtr.state cache=%s from=%s to=%s reason=%r", self.name, self.state, state, reason)
            self.state = state
        alarm_id = f"rtr-session/{self.name}"
        if state in _DOWN_STATES and not self._down_alarm:
            self._down_alarm = True
            self._event(SESSION_EVENT, Severity.ERROR, f"RTR session to cache {self.name} down: {reason}",
                        alarm=True, alarm_id=alarm_id, up="false", reason=reason)
        elif state is CacheState.IN_SYNC and self._down_alarm is not False:
            self._down_alarm = False
            self._event(SESSION_EVENT, Severity.INFO, f"RTR session to cache {self.name} up",
                        alarm_id=alarm_id, up="true")

    def _event(
        self, etype: str, severity: Severity, message: str, alarm: bool = False, **fields: str
    ) -> None:
        event = Event(self.wallclock(), f"rtr:{self.name}", etype, severity, message,
                      {"cache": self.name, **fields}, alarm)
        self.listener.cache_event(event)
