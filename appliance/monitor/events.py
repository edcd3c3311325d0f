"""Every event savd reports, as a typed notice with structured fields (no free-text log lines).

A notice knows its type, severity, source, message and fields; alarm notices also name the alarm they
raise or clear (`alarm_id`, `raises`). The Monitor stamps the time and turns a notice into the shared
model.Event. Their types are those of the one vocabulary (vocabulary.py), the same the producers that
build events directly emit: a BGP session notice is `bgp.session-down` / `bgp.session-up` like the
speakers', a push failure `flowspec.push-failed` like the pusher's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import ClassVar

from appliance.model import Severity


class EventType(enum.StrEnum):
    BGP_SESSION_DOWN = "bgp.session-down"
    BGP_SESSION_UP = "bgp.session-up"
    RTR_SESSION = "rtr-session"
    RPKI_STALE = "rpki-stale"
    RPKI_EXPIRED = "rpki-expired"
    PUSH_FAILED = "flowspec.push-failed"
    RULE_NOT_INSTALLED = "rule-not-installed"
    ENFORCER_UNREACHABLE = "enforcer-unreachable"
    ENFORCER_SESSION_DOWN = "enforcer.session-down"
    PREFIX_CONFLICT = "report-conflict"
    GUARDRAIL_REFUSED = "flowspec.refused"
    SPOOFING_SEEN = "spoofing-seen"
    RULE_DRIFT = "drift.rule"
    RULE_STALE = "stale.rule"
    RULES_CHANGED = "rules-changed"
    REPORT_CHANGED = "report-changed"
    STATE_RESTORED = "state-restored"
    JOURNAL_FAILED = "journal-failed"
    DAEMON = "daemon"
    COLLAB_AGREEMENT_ENDED = "collab.agreement-ended"


class Notice:
    """Base of typed notices. Subclasses are frozen dataclasses; their fields become the event fields."""

    __slots__ = ()
    TYPE: ClassVar[EventType]

    @property
    def event_type(self) -> EventType:
        return self.TYPE

    @property
    def source(self) -> str:
        raise NotImplementedError

    @property
    def severity(self) -> Severity:
        return Severity.INFO

    @property
    def message(self) -> str:
        raise NotImplementedError

    @property
    def alarm_id(self) -> str:
        """The alarm this notice raises or clears; "" for a plain event."""
        return ""

    @property
    def raises(self) -> bool:
        """True: raise (or refresh) `alarm_id`; False: clear it."""
        return False

    def fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = str(value).lower() if isinstance(value, bool) else str(value)
        return out


@dataclass(frozen=True, slots=True)
class BgpSession(Notice):
    """A BGP session of a speaker went up or down."""

    TYPE = EventType.BGP_SESSION_DOWN
    speaker: str
    peer: str
    router: str
    up: bool
    reason: str = ""

    @property
    def event_type(self) -> EventType:
        return EventType.BGP_SESSION_UP if self.up else EventType.BGP_SESSION_DOWN

    @property
    def source(self) -> str:
        return f"speaker:{self.speaker}"

    @property
    def severity(self) -> Severity:
        return Severity.INFO if self.up else Severity.ERROR

    @property
    def message(self) -> str:
        state = "up" if self.up else "down"
        why = f": {self.reason}" if self.reason else ""
        return f"BGP session to {self.router} ({self.peer}) {state}{why}"

    @property
    def alarm_id(self) -> str:
        return f"bgp-session/{self.speaker}/{self.peer}"

    @property
    def raises(self) -> bool:
        return not self.up


@dataclass(frozen=True, slots=True)
class RtrSession(Notice):
    """An RTR session to an RPKI cache went up or down."""

    TYPE = EventType.RTR_SESSION
    cache: str
    up: bool
    reason: str = ""

    @property
    def source(self) -> str:
        return f"rtr:{self.cache}"

    @property
    def severity(self) -> Severity:
        return Severity.INFO if self.up else Severity.ERROR

    @property
    def message(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"RTR session to cache {self.cache} {'up' if self.up else 'down'}{why}"

    @property
    def alarm_id(self) -> str:
        return f"rtr-session/{self.cache}"

    @property
    def raises(self) -> bool:
        return not self.up


@dataclass(frozen=True, slots=True)
class RpkiFreshness(Notice):
    """RPKI data of a source became stale or expired (raises), or fresh again (clears)."""

    TYPE = EventType.RPKI_STALE
    rpki_source: str
    age_s: float
    stale: bool
    expired: bool = False

    @property
    def event_type(self) -> EventType:
        return EventType.RPKI_EXPIRED if self.expired else EventType.RPKI_STALE

    @property
    def source(self) -> str:
        return f"rpki:{self.rpki_source}"

    @property
    def severity(self) -> Severity:
        if self.expired:
            return Severity.CRITICAL
        return Severity.WARNING if self.stale else Severity.INFO

    @property
    def message(self) -> str:
        if self.expired:
            return f"RPKI data from {self.rpki_source} expired ({self.age_s:.0f} s old): rules withdrawn"
        if self.stale:
            return f"RPKI data from {self.rpki_source} is stale ({self.age_s:.0f} s old)"
        return f"RPKI data from {self.rpki_source} is fresh again"

    @property
    def alarm_id(self) -> str:
        return f"rpki-stale/{self.rpki_source}"

    @property
    def raises(self) -> bool:
        return self.stale or self.expired


@dataclass(frozen=True, slots=True)
class JournalWrite(Notice):
    """A write to the state journal failed (raises: inputs are refused until it works, /health is
    degraded) or worked again after a failure (clears)."""

    TYPE = EventType.JOURNAL_FAILED
    path: str
    ok: bool
    kind: str = ""
    reason: str = ""

    @property
    def source(self) -> str:
        return "state"

    @property
    def severity(self) -> Severity:
        return Severity.INFO if self.ok else Severity.CRITICAL

    @property
    def message(self) -> str:
        if self.ok:
            return f"journal writes work again: {self.path}"
        return f"journal write failed ({self.kind}), inputs are refused until it works: {self.reason}"

    @property
    def alarm_id(self) -> str:
        return "journal-failed"

    @property
    def raises(self) -> bool:
        return not self.ok


@dataclass(frozen=True, slots=True)
class PushResult(Notice):
    """A FlowSpec push to a peer failed (raises) or succeeded after a failure (clears)."""

    TYPE = EventType.PUSH_FAILED
    peer: str
    router: str
    ok: bool
    announced: int = 0
    withdrawn: int = 0
    reason: str = ""

    @property
    def source(self) -> str:
        return "pusher"

    @property
    def severity(self) -> Severity:
        return Severity.INFO if self.ok else Severity.ERROR

    @property
    def message(self) -> str:
        if self.ok:
            return f"pushed to {self.router}: {self.announced} announced, {self.withdrawn} withdrawn"
        return f"push to {self.router} ({self.peer}) failed: {self.reason}"

    @property
    def alarm_id(self) -> str:
        return f"push-failed/{self.peer}"

    @property
    def raises(self) -> bool:
        return not self.ok


@dataclass(frozen=True, slots=True)
class RuleInstalled(Notice):
    """A router's enforcer reports whether a pushed rule is installed in its data plane."""

    TYPE = EventType.RULE_NOT_INSTALLED
    router: str
    rule: str
    installed: bool
    reason: str = ""

    @property
    def source(self) -> str:
        return f"enforcer:{self.router}"

    @property
    def severity(self) -> Severity:
        return Severity.INFO if self.installed else Severity.ERROR

    @property
    def message(self) -> str:
        if self.installed:
            return f"rule {self.rule} installed on {self.router}"
        return f"rule {self.rule} not installed on {self.router}: {self.reason or 'unknown reason'}"

    @property
    def alarm_id(self) -> str:
        return f"rule-not-installed/{self.router}/{self.rule}"

    @property
    def raises(self) -> bool:
        return not self.installed


@dataclass(frozen=True, slots=True)
class EnforcerReachable(Notice):
    """A router's enforcer answered the poller, or did not: nothing is enforced there that savd can see
    (a stopped enforcer removes its table, fail open), so an unreachable one is an alarm."""

    TYPE = EventType.ENFORCER_UNREACHABLE
    router: str
    reachable: bool
    error: str = ""

    @property
    def source(self) -> str:
        return f"enforcer:{self.router}"

    @property
    def severity(self) -> Severity:
        return Severity.INFO if self.reachable else Severity.ERROR

    @property
    def message(self) -> str:
        if self.reachable:
            return f"enforcer of {self.router} answers again"
        return f"enforcer of {self.router} unreachable: {self.error or 'no answer'}"

    @property
    def alarm_id(self) -> str:
        return f"enforcer-unreachable/{self.router}"

    @property
    def raises(self) -> bool:
        return not self.reachable


@dataclass(frozen=True, slots=True)
class EnforcerSessionDown(Notice):
    """A router's enforcer has no BGP session with the router's FRR (or has one again): FRR's FlowSpec
    does not reach nftables there, which the rule alarms alone show only as missing rules. `diagnosis`
    is the enforcer's (node.frr_interface_state): why bgpd refuses the session, when it can tell."""

    TYPE = EventType.ENFORCER_SESSION_DOWN
    router: str
    down: bool
    reason: str = ""
    diagnosis: str = ""
    down_s: int = 0

    @property
    def source(self) -> str:
        return f"enforcer:{self.router}"

    @property
    def severity(self) -> Severity:
        return Severity.ERROR if self.down else Severity.INFO

    @property
    def message(self) -> str:
        if not self.down:
            return f"enforcer of {self.router}: BGP session with FRR established again"
        why = f" ({self.reason})" if self.reason else ""
        return (f"enforcer of {self.router}: BGP session with FRR down for {self.down_s} s{why}: "
                f"{session_hint(self.router, self.diagnosis)}")

    @property
    def alarm_id(self) -> str:
        return f"enforcer.session-down/{self.router}"

    @property
    def raises(self) -> bool:
        return self.down


def session_hint(router: str, diagnosis: str) -> str:
    """What an enforcer's diagnosis (node.frr_interface_state) means to the operator."""
    refused = "bgpd refuses the enforcer's session (NOTIFICATION 5/0)"
    match diagnosis:
        case "zebra-down":
            return f"zebra is not running in {router}: {refused}; restart FRR's zebra there"
        case "interface-unknown":
            return (f"zebra in {router} does not know the enforcer's interface: {refused}; "
                    "the enforcer re-signals it")
        case "address-unknown":
            return (f"zebra in {router} does not know the enforcer's interface address: {refused}; "
                    "the enforcer re-signals it")
        case "ok":
            return (f"FRR in {router} knows the enforcer's interface; see the enforcer's log and "
                    "`show bgp neighbors` there")
        case "unknown":
            return f"the enforcer could not ask FRR in {router} (vtysh failed); see the enforcer's log"
        case _:
            return "not diagnosed yet; see the enforcer's log"


@dataclass(frozen=True, slots=True)
class PrefixConflict(Notice):
    """Two inputs disagree about a prefix (e.g. reported on two routers, or a report contradicting RPKI)."""

    TYPE = EventType.PREFIX_CONFLICT
    prefix: str
    detail: str
    resolved: bool = False

    @property
    def source(self) -> str:
        return "engine"

    @property
    def severity(self) -> Severity:
        return Severity.INFO if self.resolved else Severity.WARNING

    @property
    def message(self) -> str:
        return f"prefix {self.prefix}: {'conflict resolved' if self.resolved else self.detail}"

    @property
    def alarm_id(self) -> str:
        return f"prefix-conflict/{self.prefix}"

    @property
    def raises(self) -> bool:
        return not self.resolved


@dataclass(frozen=True, slots=True)
class GuardrailRefused(Notice):
    """A rule set was refused by a guardrail (too many rules, would block a learned prefix, ...)."""

    TYPE = EventType.GUARDRAIL_REFUSED
    router: str
    guardrail: str
    detail: str
    refused: bool = True

    @property
    def source(self) -> str:
        return "flowspec"

    @property
    def severity(self) -> Severity:
        return Severity.ERROR if self.refused else Severity.INFO

    @property
    def message(self) -> str:
        if not self.refused:
            return f"guardrail {self.guardrail} on {self.router} passes again"
        return f"guardrail {self.guardrail} refused the rules for {self.router}: {self.detail}"

    @property
    def alarm_id(self) -> str:
        return f"guardrail-refused/{self.router}/{self.guardrail}"

    @property
    def raises(self) -> bool:
        return self.refused


@dataclass(frozen=True, slots=True)
class SpoofingSeen(Notice):
    """Drop counters of a rule rose: spoofed traffic, attributed to router, interface and source prefix.
    For a catch-all (source 0.0.0.0/0 or ::/0) `top_sources` names the actual sources behind the rise
    ("prefix:packets,..." most first; `top_source_bytes` the same with bytes), "" when none reported."""

    TYPE = EventType.SPOOFING_SEEN
    router: str
    interface: str
    source_prefix: str
    packets: int
    bytes: int
    active: bool = True
    top_sources: str = ""
    top_source_bytes: str = ""

    @property
    def source(self) -> str:
        return f"enforcer:{self.router}"

    @property
    def severity(self) -> Severity:
        return Severity.WARNING if self.active else Severity.INFO

    @property
    def message(self) -> str:
        where = f"{self.router} {self.interface} from {self.source_prefix}"
        if not self.active:
            return f"spoofed traffic on {where} stopped"
        tops = f" (top sources {self.top_sources})" if self.top_sources else ""
        return f"spoofed traffic on {where}: {self.packets} packets, {self.bytes} bytes dropped{tops}"

    @property
    def alarm_id(self) -> str:
        return f"spoofing-seen/{self.router}/{self.interface}/{self.source_prefix}"

    @property
    def raises(self) -> bool:
        return self.active


@dataclass(frozen=True, slots=True)
class RuleDrift(Notice):
    """What a router holds departs from what savd intends for one rule (monitor/drift.py): `kind` is
    missing, extra or changed (action or groups); savd re-pushes it. Cleared once the router matches."""

    TYPE = EventType.RULE_DRIFT
    router: str
    rule: str
    prefix: str
    kind: str
    intended: str
    held: str
    repairs: int = 0
    drifted: bool = True

    @property
    def source(self) -> str:
        return f"drift:{self.router}"

    @property
    def severity(self) -> Severity:
        return Severity.WARNING if self.drifted else Severity.INFO

    @property
    def message(self) -> str:
        if not self.drifted:
            return f"{self.router} holds rule {self.rule} as savd intends again ({self.repairs} repairs)"
        return (f"{self.router} drifted on rule {self.rule}: {self.kind} (intended "
                f"{self.intended or 'none'}, held {self.held or 'none'}), {self.repairs} repairs so far")

    @property
    def alarm_id(self) -> str:
        return f"drift.rule/{self.router}/{self.rule}"

    @property
    def raises(self) -> bool:
        return self.drifted


@dataclass(frozen=True, slots=True)
class RuleStale(Notice):
    """A rule in force rests on inputs past their freshness bound (RPKI data stale): it still applies (fail
    open withdraws only what expires), the operator is told. Cleared when the inputs are fresh again."""

    TYPE = EventType.RULE_STALE
    router: str
    interface: str
    inputs: str
    stale: bool = True

    @property
    def source(self) -> str:
        return "freshness"

    @property
    def severity(self) -> Severity:
        return Severity.WARNING if self.stale else Severity.INFO

    @property
    def message(self) -> str:
        if not self.stale:
            return f"rule of {self.router} {self.interface} rests on fresh inputs again"
        return f"rule of {self.router} {self.interface} rests on stale inputs: {self.inputs}"

    @property
    def alarm_id(self) -> str:
        return f"stale.rule/{self.router}/{self.interface}"

    @property
    def raises(self) -> bool:
        return self.stale


@dataclass(frozen=True, slots=True)
class Operational(Notice):
    """A plain event of the daemon itself (started, stopped, state restored, rules changed, report added)."""

    TYPE = EventType.DAEMON
    kind: EventType
    origin: str
    text: str
    level: Severity = Severity.INFO
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def event_type(self) -> EventType:
        return self.kind

    @property
    def source(self) -> str:
        return self.origin

    @property
    def severity(self) -> Severity:
        return self.level

    @property
    def message(self) -> str:
        return self.text

    def fields(self) -> dict[str, str]:
        return dict(self.extra)


@dataclass(frozen=True, slots=True)
class CollabAgreementEnded(Notice):
    """A collaboration agreement with `peer` ended or expired (`reason`): the allowances its SAV-specific
    information gave are withdrawn, so our rules there are the path-based ones again, which may block the
    peer's asymmetric traffic (the alarm says why such drops may appear). A new agreement clears it."""

    TYPE = EventType.COLLAB_AGREEMENT_ENDED
    peer: str
    ca_id: str
    reason: str
    allowances: int = 0

    @property
    def source(self) -> str:
        return f"collab:{self.peer}"

    @property
    def severity(self) -> Severity:
        return Severity.WARNING

    @property
    def message(self) -> str:
        return (f"collaboration agreement {self.ca_id} with {self.peer} {self.reason}: {self.allowances} "
                "allowances withdrawn, its interfaces fall back to the path-based rules")

    @property
    def alarm_id(self) -> str:
        return collab_alarm_id(self.peer)

    @property
    def raises(self) -> bool:
        return True


def collab_alarm_id(peer: str) -> str:
    return f"collab.agreement-ended/{peer}"
