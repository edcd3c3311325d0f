"""Request and response bodies. Requests are validated by pydantic: unknown fields, bad names and bad
prefixes are 422s.

Strict types: JSON `"yes"` or `1` is not a boolean and `5` is not a name (pydantic's lax mode would take
them). Names and prefixes go through the same checks as every other input (appliance.names,
model.canonical_prefix), so the API accepts exactly what the reports file and `savd report` accept.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, with_config
from typing_extensions import TypedDict  # pydantic needs it for a TypedDict before Python 3.12

from appliance.flowspec.rules import ActionKind
from appliance.model import (
    Capability,
    Delivery,
    Inspector,
    ListKind,
    Mode,
    PrefixFlags,
    PrefixReport,
    Relationship,
    Role,
    Severity,
    Suspect,
    canonical_prefix,
)
from appliance.monitor.metadata import Category
from appliance.names import check_interface_name, check_router_name, subnet_id_problem
from rpki.rtr.session import CacheState


def _canonical_prefix(value: str) -> str:
    """A request's source prefix, canonical; the validation error says what a prefix must be."""
    try:
        return canonical_prefix(value)
    except ValueError as exc:
        raise ValueError(f"not a CIDR prefix with zero host bits: {exc}") from None


class ReportIn(BaseModel):
    """A source prefix served by `router` on `interface` (the controller draft section 5)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    router: str = Field(min_length=1, max_length=64, examples=["r1"])
    interface: str = Field(min_length=1, max_length=15, examples=["eth1"])
    prefix: str = Field(min_length=1, max_length=64, examples=["198.18.1.0/24"])
    subnet: str = Field(default="", max_length=128)
    anycast: StrictBool = False
    special: StrictBool = False
    multihomed: StrictBool = False

    @field_validator("router")
    @classmethod
    def _router(cls, value: str) -> str:
        return check_router_name(value)

    @field_validator("interface")
    @classmethod
    def _interface(cls, value: str) -> str:
        return check_interface_name(value)

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str) -> str:
        problem = subnet_id_problem(value) if value else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("prefix")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return _canonical_prefix(value)

    def to_report(self) -> PrefixReport:
        flags = PrefixFlags(self.anycast, self.special, self.multihomed)
        return PrefixReport(self.router, self.interface, self.prefix, self.subnet, flags, source="api")


class InspectorIn(BaseModel):
    """An inspection function instance (steering): registered, or updated by name."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=64, examples=["dpi-1"])
    address: str = Field(min_length=1, max_length=64, examples=["198.18.0.50"],
                         description="IPv4 or IPv6 address inside the router network: the redirect next hop")
    capacity: float = Field(gt=0, allow_inf_nan=False, examples=[1000.0])
    load: float = Field(default=0.0, ge=0, allow_inf_nan=False, examples=[120.0])

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_router_name(value)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"not an IPv4 or IPv6 address: {value!r}") from None

    def to_inspector(self) -> Inspector:
        return Inspector(self.name, self.address, self.capacity, self.load)


class LoadIn(BaseModel):
    """An inspector's load report, in the unit of its capacity."""

    model_config = ConfigDict(extra="forbid", strict=True)

    load: float = Field(ge=0, allow_inf_nan=False, examples=[640.0])


class SuspectIn(BaseModel):
    """A suspicious source prefix to steer through an inspector; `router` "" = every router."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prefix: str = Field(min_length=1, max_length=64, examples=["198.18.1.7/32"])
    reason: str = Field(default="", max_length=256, examples=["ids: port scan"])
    router: str = Field(default="", max_length=64, examples=["r1"])

    @field_validator("router")
    @classmethod
    def _router(cls, value: str) -> str:
        return check_router_name(value) if value else value

    @field_validator("prefix")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return _canonical_prefix(value)

    def to_suspect(self) -> Suspect:
        return Suspect(self.prefix, self.reason, self.router)


# --- responses --------------------------------------------------------------------------------------
# Every JSON answer has a model here, so /openapi.json and /docs describe every field, and FastAPI
# validates each answer against its model (a mismatch is a 500, which the tests see). Two kinds:
# - _Built: an envelope app.py builds itself; an undeclared key is refused (extra="forbid"), so a handler
#   that drifts from its model fails every test that calls it.
# - _Served: a record another module produces (facts, rules, RPKI status, monitor records); a field added
#   there is served rather than dropped or a 500 (extra="allow"), and tests/unit/daemon/test_api_schemas.py
#   fails until it is declared here.
# Fields are declared in the order they are served.


class _Built(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Served(BaseModel):
    model_config = ConfigDict(extra="allow", serialize_by_alias=True)


class ErrorBody(BaseModel):
    """Every error, any status (appliance/api/errors.py): `message` for an operator, plus optional fields
    (`detail` for a 422, `error` and `kind` for a journal failure, `limit_bytes` for a 413)."""

    model_config = ConfigDict(extra="allow")

    message: str = Field(examples=["missing or wrong bearer token (Authorization: Bearer <token>)"])


class Health(_Built):
    status: Literal["ok", "degraded"]
    state_version: int
    rules_version: int | None = Field(description="state version of the rules in force; null before any")
    alarms: int = Field(description="active alarms")
    degraded: list[str] | None = Field(default=None, description="why, while status is degraded (absent "
                                                                  "otherwise)")


# --- topology (model.Router, Interface, Link, IgpPrefix, Neighbor as the state store encodes them) ----


class RouterOut(_Served):
    """A router the sources report, with its role as resolved when savd's configuration is known."""

    name: str
    router_id: str
    asn: int
    role: Role
    capability: Capability


class InterfaceOut(_Served):
    router: str
    name: str
    addresses: list[str] = Field(description="interface addresses with prefix length")
    external: bool


class LinkOut(_Served):
    """A directed IGP adjacency (one record per direction, as in BGP-LS)."""

    local: str
    remote: str
    local_address: str
    remote_address: str
    metric: int


class IgpPrefixOut(_Served):
    router: str
    prefix: str
    metric: int
    route_tags: list[int]
    external: bool = Field(description="redistributed into the IGP (OSPF AS-external or NSSA, IS-IS X flag): "
                                       "not evidence the prefix is internal")


class NeighborOut(_Served):
    """An eBGP neighbour of a border router, reached over `interface`."""

    router: str
    interface: str
    asn: int
    relationship: Relationship
    address: str
    local_address: str = Field(default="", description="our side of the link ([[engine.neighbor]])")


class Topology(_Built):
    version: int = Field(description="state version")
    routers: list[RouterOut]
    interfaces: list[InterfaceOut]
    links: list[LinkOut]
    igp_prefixes: list[IgpPrefixOut]
    neighbors: list[NeighborOut] = Field(description="the configured eBGP neighbours when savd has a "
                                                     "configuration, else those the sources report")
    paths: int = Field(description="how many BGP paths the state holds (not listed here)")


# --- reports ------------------------------------------------------------------------------------------


class Flags(_Served):
    anycast: bool
    special: bool
    multihomed: bool


class ReportOut(_Served):
    router: str
    interface: str
    prefix: str
    subnet: str
    flags: Flags
    source: str = Field(description="the kind of source that made it (api, file, bgp-ls, ...)")


class ListedReport(ReportOut):
    sources: list[str] = Field(description="the sources holding this report (api, file:..., store)")


class ReportList(_Built):
    version: int
    reports: list[ListedReport]


class ReportWritten(_Built):
    report: ReportOut
    created: bool = Field(description="false when the API held a report for this key already")
    replaced: list[ReportOut]
    version: int


class ReportsDeleted(_Built):
    deleted: list[ReportOut]
    version: int


# --- rules (model.SavRuleSet.to_dict) ---------------------------------------------------------------


class ActionOut(_Served):
    mode: Mode
    rate: float = Field(description="bytes per second (rate-limit)")
    redirect: str = Field(description="route target such as 65001:100 (redirect)")


class RuleOut(_Served):
    """One interface's SAV rule, with the inputs that justify each prefix."""

    router: str
    interface: str
    kind: ListKind
    prefixes: list[str]
    action: ActionOut
    delivery: Delivery
    algorithm: str
    provenance: dict[str, list[str]] = Field(
        description="prefix -> its justifications (report:..., roa:..., path:<if>:<as path> via <sources>)")
    stale: bool = Field(description="the rule rests on inputs past their freshness bound (a stale.rule "
                                    "alarm names it); it stays in force until they expire")


class SteeredOut(_Served):
    """A steering decision (model.Steered): the suspect prefix on `router` goes to `inspector` at
    `address` (by rt-redirect to the route target `target` when set: IPv6 under `[steering]
    ipv6_redirect = "route-target"`), or, with no inspector available, gets `fallback` (accept: no rule;
    drop)."""

    router: str
    prefix: str
    reason: str
    inspector: str
    address: str
    fallback: Literal["accept", "drop"] | None
    target: str = Field("", description="route target ASN:NN of an rt-redirect the router maps to "
                                        "`address` (empty: redirect-to-IP)")


class CollabAllowanceOut(_Served):
    """A collaborating AS's allowance (model.CollabAllowance): `prefix` is a legitimate source on `router`'s
    `interface` under agreement `ca_id` with `peer` (AS `peer_asn`) until `expires_at` (epoch seconds)."""

    router: str
    interface: str
    prefix: str
    peer: str
    peer_asn: int
    ca_id: str
    expires_at: float
    live: bool = Field(description="false once expires_at has passed: it no longer counts")


class RuleList(_Built):
    version: int | None = Field(description="state version the rules come from; null before the first")
    rules: list[RuleOut]
    steering: list[SteeredOut] = Field(default_factory=list, description="suspect sources steered through "
                                       "inspection functions (operator only: tenants do not see it)")
    collaboration: list[CollabAllowanceOut] = Field(
        default_factory=list, description="allowances of collaborating ASes applied to these rules (live "
        "ones; operator only: tenants do not see it)")


class CollabAgreementOut(_Served):
    """A collaboration agreement as the protocol last reported it."""

    peer: str
    ca_id: str
    initiator: str
    provider: str
    mode: str
    info: str
    expires_at: float
    ended: bool
    state: Literal["in-force", "ended", "expired"]


class CollabEnded(_Built):
    """POST /api/v1/collaboration/{peer}/end: the agreement, now ended (the peer was told); no new one is
    made with the peer until POST .../allow."""

    ended: CollabAgreementOut


class CollabAllowed(_Built):
    """POST /api/v1/collaboration/{peer}/allow: agreements with the peer can be made again."""

    peer: str
    was_revoked: bool


class CollabPeerOut(_Served):
    peer: str
    agreement: str = Field(description="ca_id of its last agreement, \"\" when none was reported")
    state: Literal["in-force", "ended", "expired", "unknown"]
    allowances: int = Field(description="its live allowances")


class Collaboration(_Built):
    version: int
    now: float
    peers: list[CollabPeerOut]
    agreements: list[CollabAgreementOut]
    allowances: list[CollabAllowanceOut]


class InspectorOut(_Served):
    name: str
    address: str
    capacity: float
    load: float
    ratio: float = Field(description="load / capacity: the lowest below 1 takes a suspect")
    source: Literal["api", "config"]


class InspectorList(_Built):
    version: int
    inspectors: list[InspectorOut]


class InspectorWritten(_Built):
    inspector: InspectorOut
    created: bool
    version: int


class InspectorDeleted(_Built):
    deleted: InspectorOut
    version: int


class SuspectOut(_Served):
    prefix: str
    reason: str
    router: str


class SuspectList(_Built):
    version: int
    suspects: list[SuspectOut]


class SuspectWritten(_Built):
    suspect: SuspectOut
    created: bool
    version: int


class SuspectsDeleted(_Built):
    deleted: list[SuspectOut]
    version: int


class InterfaceRule(_Built):
    version: int | None
    rule: RuleOut


# --- explain and trace (api/explain.Explanation.to_dict) ----------------------------------------------


class Verdict(_Served):
    """What the pushed rules do to packets from `source` entering `interface`, and why."""

    router: str
    interface: str
    source: str = Field(description="the source as a canonical prefix (an address is a /32 or /128)")
    verdict: Literal["pass"] | Mode = Field(description='"pass", or the mode of the rule that acts on it')
    reason: str
    matched_prefix: str = Field(description='the longest listed prefix covering the source, or ""')
    provenance: list[str] = Field(description="the justifications of matched_prefix")
    list_kind: ListKind | Literal[""] = Field(alias="list", description='the list kind; "" without a rule')
    algorithm: str
    flowspec_rule: str = Field(description='the compiled rule that decides ("accept fe80::/10"), or ""')


class _Versioned(BaseModel):
    version: int | None = Field(description="state version of the rules in force; null before the first")


class Explained(Verdict, _Versioned):
    """A verdict with the version of the rules that gave it (`version` is served first)."""


class Trace(_Built):
    version: int | None
    source: str
    trust: Literal["trusted", "suspicious"] = Field(
        description="suspicious when a suspect prefix covers the source (it is steered: `steered`), else "
                    "trusted; where it counts as spoofed is `stopped_on`")
    steered: list[SteeredOut] = Field(description="the steering decisions covering the source")
    stopped_on: list[str] = Field(description="router:interface of each verdict other than pass")
    verdicts: list[Verdict] = Field(description="one per interface with a rule")


# --- RPKI (api/memory.RpkiStatusBoard over rpki.service) --------------------------------------------


class RtrCache(_Served):
    """One RTR cache session (rpki.rtr.session.CacheStatus)."""

    name: str
    preference: int
    state: CacheState
    version: int | None = Field(description="RTR protocol version; null before it is negotiated")
    session_id: int | None
    serial: int | None
    last_update: float | None = Field(description="Unix time of the last End of Data; null before one")
    vrps: int
    aspas: int
    refresh_s: float
    retry_s: float
    expire_s: float
    last_error: str
    active: bool = Field(description="the cache whose data is in use (lowest preference in sync)")


class RpkiFile(_Served):
    """One watched relying-party output file (rpki.files.FileWatcher.status_of)."""

    path: str
    last_update: float | None = Field(description="Unix time it was last loaded; null while it is missing")
    vrps: int
    aspas: int
    error: str = Field(description='why the last load failed (the last good data is kept), or ""')


@with_config(ConfigDict(extra="allow"))
class RpkiCounts(TypedDict, total=False):
    """The merged tables' counts (rpki.tables.RpkiTables.counts): all of them, or none (`{}`) when savd
    runs no RPKI source."""

    vrp: int
    vrp_v4: int
    vrp_v6: int
    aspa: int
    version: int


class RpkiInState(_Built):
    vrps: int = Field(description="VRPs in the state store (what the engine uses)")
    aspas: int


class RpkiStatus(_Served):
    caches: list[RtrCache]
    files: list[RpkiFile]
    counts: RpkiCounts
    state: RpkiInState


# --- FlowSpec (the store's record of pushes, appliance/state/pushed.py) -----------------------------


class FlowSpecPeers(_Built):
    peers: dict[str, int] = Field(description="peer -> FlowSpec rules held for it")


class FlowMatchOut(_Served):
    packet_length_min: int | None = Field(description="an always-true packet-length >= N, or null")
    source: str


class FlowActionOut(_Served):
    kind: ActionKind
    rate_bps: int = Field(description="bytes per second (rate-limit)")
    redirect: str = Field(description="route target (redirect)")
    redirect_ip: str = Field(default="", description="next-hop address (redirect-ip: steering)")


class FlowRuleOut(_Served):
    """A FlowSpec rule as recorded when pushed (appliance.flowspec.rules.FlowRule; keys sorted)."""

    action: FlowActionOut
    groups: list[int] = Field(description="the router's interface groups the rule applies to; none: every "
                                          "interface (steering)")
    match: FlowMatchOut
    router: str


class HeldRule(_Built):
    key: str = Field(description="the NLRI as text", examples=["source 198.18.1.0/24"])
    rule: FlowRuleOut | str = Field(description="the rule; a record that is not a FlowRule, as its text")


class HeldRules(_Built):
    peer: str
    rules: list[HeldRule] = Field(description="sorted by key")


# --- enforcer counters, events, alarms (appliance.monitor) ------------------------------------------


class _Meta(_Served):
    """The common metadata of every monitoring record (monitor/metadata.py, seeds/002)."""

    time: float = Field(description="Unix time")
    source: str = Field(description="the component that made it", examples=["enforcer:r1", "pusher"])
    severity: Severity
    category: Category
    router: str = Field(description='the router it concerns, or ""')
    interface: str = Field(description='the interface it concerns, or ""')
    prefix: str = Field(description='the prefix it concerns (for counters and spoofing: the source prefix), '
                                    'or ""')


class TopSourceOut(_Built):
    source: str = Field(description="the aggregated source prefix", examples=["198.18.7.0/24"])
    packets: int
    bytes: int


class Counter(_Meta):
    """One enforcer rule's policy-hit counter on one interface (monitor.counters.CounterSample) with its
    totals since savd started; `time` is its last sample, severity warning while it raises spoofing."""

    source_prefix: str
    action: str
    packets: int
    bytes: int
    spoofed: bool = Field(description="true when the rule's matches are spoofed traffic")
    rule: str = Field(description='the enforcer rule counted (its FlowSpec NLRI), "" if not reported')
    top_sources: list[TopSourceOut] = Field(
        default_factory=list, description="a catch-all's top actual sources (aggregated to /24 or /48), "
                                          "absolute counts like packets and bytes; [] for other rules")
    total_packets: int
    total_bytes: int


class PolicyHit(_Built):
    """One enforcer rule's hits summed over the interfaces it applies to (seeds/002 7.7.2)."""

    time: float
    source: str
    severity: Severity
    category: Category
    router: str
    prefix: str
    rule: str
    action: str
    spoofed: bool
    interfaces: list[str]
    total_packets: int
    total_bytes: int


class Counters(_Built):
    counters: list[Counter]
    policy_hits: list[PolicyHit] = Field(description="per enforcer rule: the counters above summed")


class EventOut(_Meta):
    """One event of the ring buffer (monitor.bus.Record): seq, the common metadata, then the event."""

    seq: int
    type: str = Field(examples=["bgp-session", "report-changed"])
    message: str
    fields: dict[str, str]
    alarm: bool = Field(description="true when the event raises an alarm")


class Events(_Built):
    last_seq: int = Field(description="the newest event's seq: pass it as `since` to get only later ones")
    dropped: int = Field(description="events that fell off the ring buffer since savd started")
    events: list[EventOut]


class AlarmOut(_Meta):
    """An alarm raised now (monitor.alarms.Alarm), with the common metadata (`time`: last raised)."""

    id: str
    type: str
    message: str
    raised_at: float = Field(description="Unix time")
    last_at: float = Field(description="Unix time it was last raised again")
    count: int = Field(description="how many times it was raised while active")
    fields: dict[str, str]


class ServedAlarm(AlarmOut):
    """An alarm as GET /api/v1/alarms serves it (api/alarm_actions.py): with the operator's ack."""

    acked_at: float | None = Field(description="Unix time an operator acknowledged this raising of the "
                                               "alarm; null while unacknowledged")


class Alarms(_Built):
    alarms: list[ServedAlarm]


class AlarmRef(BaseModel):
    """The alarm an operator acknowledges or clears (its `id` in GET /api/v1/alarms)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, max_length=1024, examples=["spoofing-seen/r1/eth1"])
    note: str = Field(default="", max_length=256, description="why, for the event it publishes")


class AlarmAcked(_Built):
    alarm: ServedAlarm


class AlarmCleared(_Built):
    cleared: ServedAlarm = Field(description="the alarm as it was when cleared")


# --- spoofing traces (monitor/traces.py) ----------------------------------------------------------


class UpstreamOut(_Built):
    """Who sends into the interface: `internal` (the BGP-LS link's remote router and address),
    `external` (the eBGP peer's ASN, address and relationship), `access` (hosts), or `unknown`."""

    kind: Literal["internal", "external", "access", "unknown"]
    router: str
    address: str
    asn: int | None
    relationship: str


class TraceBucket(_Built):
    time: float = Field(description="Unix time the bucket starts")
    packets: int
    bytes: int


class SpoofedSource(_Built):
    prefix: str = Field(description="the source prefix the spoofed packets claimed (the rule's)")
    packets: int = Field(description="dropped in the window")
    bytes: int
    first_seen: float
    last_seen: float
    series: list[TraceBucket] = Field(description="buckets with traffic, oldest first")


class SpoofTrace(_Built):
    router: str
    interface: str
    upstream: list[UpstreamOut]
    packets: int
    bytes: int
    first_seen: float
    last_seen: float
    source_count: int = Field(description="spoofed source prefixes in the window (`sources` has the top)")
    sources: list[SpoofedSource] = Field(description="most packets first")


class SpoofTraces(_Built):
    bucket_s: float
    window_s: float
    traces: list[SpoofTrace] = Field(description="most packets first")
