"""SavRuleSet -> minimal, ordered FlowSpec rules per router (RFC 8955 IPv4, RFC 8956 IPv6).

Pure and deterministic: same input, same output; no I/O, clock or logging (events are returned, with
time 0.0 for the caller to stamp). Only rules with delivery FLOWSPEC are compiled.

Meaning of one interface's list (what the property test checks the rules against):
- blocklist: a source inside the listed prefixes gets the interface's action; others pass.
- allowlist: a source inside the listed prefixes passes; others of the same family get the action.
  An allowlist restricts only the address families it lists: one with no IPv6 prefix leaves IPv6
  unfiltered, and an empty allowlist compiles to nothing (fail open: no knowledge is not "nothing is
  legitimate"; an event says so).
- sources in `always_allowed` (link-local and unspecified by default) always pass: they are not
  routable, and dropping them breaks the link (IPv6 neighbour discovery under an allowlist's ::/0).
- interfaces without a list, and packets matching no rule, pass.

Encoding: every rule carries a source-prefix component and an interface-set community with the group
IDs of the interfaces it applies to (groups.py). Evaluation is RFC 8955 §5.1 order, first match wins,
which for source-only rules is longest prefix match. Per interface and family, the aggregate module
computes the smallest longest-match table (ORTC) with the same meaning, at most the exact CIDR cover
(+1 default discard for an allowlist) and fewer where exceptions are smaller (a blocked /16 with one
allowed /24 is 2 rules: discard /16, accept /24). Entries with the same prefix and action on several
interfaces are merged into one rule with several groups.

Same prefix, different actions on different interfaces (allowed on eth1, blocked on eth2): a BGP speaker
keys routes by NLRI, so two rules with one match would replace each other. The compiler emits one rule
per distinct action, each with its own interface groups (and one per chunk of `max_groups_per_rule`
groups, so the communities fit in a 4,096-octet UPDATE), and makes their NLRI distinct with an
always-true `packet-length >= N` component (N = 0, 1, ...; the first action in ActionKind order gets no
extra component). Their interface groups are disjoint, so their relative order never matters, and the
extra component does not move them relative to other prefixes (RFC 8955 compares the source prefix,
type 2, before packet length, type 10).

Mode mapping: drop -> traffic-rate 0; rate-limit N -> traffic-rate N bytes/s (N <= 0 -> discard);
redirect T -> rt-redirect T; monitor -> traffic-action sample (forward and count: "no filtering action",
but distinguishable from an allowlist's accept so that enforcers count would-be drops).

Steering (flowspec/steering.py): the rule set's steered suspect prefixes are merged into each router's
rules last, in RFC 8955 order (a steered /32 inside an allowlisted /24 is redirected; a SAV drop wins).

Guardrails (per router; a refused router's plan has `refused=True` and no rules, so the pusher keeps
what it pushed before and an alarm says why):
- more rules than `max_rules_per_router`;
- a rule set that would block (drop or rate-limit) a source prefix on an interface from whose neighbour
  the router currently learns a route for it (`learned` BgpPaths), unless `force` (then a warning event).
"""

from __future__ import annotations

import bisect
import ipaddress
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from appliance.flowspec import aggregate, reaggregate
from appliance.flowspec.groups import assign_groups
from appliance.flowspec.guard import violations
from appliance.flowspec.rules import (
    ACCEPT,
    MAX_DISCRIMINATORS,
    ActionKind,
    FlowAction,
    FlowMatch,
    FlowRule,
    FlowSpecPlan,
    InterfaceGroup,
    RouterFlowSpec,
    RouterStats,
)
from appliance.flowspec.steering import with_steering
from appliance.model import (
    BgpPath,
    Delivery,
    Event,
    InterfaceRules,
    ListKind,
    Mode,
    SavRuleSet,
    Severity,
)

SOURCE = "flowspec"


@dataclass(frozen=True, slots=True)
class CompileOptions:
    max_rules_per_router: int = 10_000
    force: bool = False
    #: sources that are never filtered: not routable, but needed on the link (IPv6 neighbour discovery
    #: from link-local addresses, DAD and DHCP from the unspecified address). An allowlist allows them in
    #: the families it lists; a blocklist never blocks them.
    always_allowed: tuple[str, ...] = ("0.0.0.0/32", "fe80::/10", "::/128")
    #: interface-set communities per rule: 8 octets each, and an UPDATE is at most 4,096 octets (RFC 4271)
    #: unless both ends do RFC 8654; more interfaces with one (prefix, action) become several rules.
    max_groups_per_rule: int = 256
    #: explicit interface-set group IDs keyed by (router, interface); others are derived (groups.py)
    group_ids: Mapping[tuple[str, str], int] = field(default_factory=dict)


def _event(kind: str, severity: Severity, message: str, alarm: bool, **fields: str) -> Event:
    return Event(0.0, SOURCE, kind, severity, message, dict(sorted(fields.items())), alarm)


def _redirect_ok(target: str) -> bool:
    """rt-redirect targets: ASN:NN (2- or 4-octet AS) or IPv4:NN (RFC 8955 §7.4, RFC 7674)."""
    head, sep, tail = target.rpartition(":")
    if not sep or not tail.isdigit():
        return False
    if head.isdigit():
        asn, nn = int(head), int(tail)
        return asn < 2**32 and nn < (2**32 if asn < 2**16 else 2**16)
    try:
        ipaddress.IPv4Address(head)
    except ValueError:
        return False
    return int(tail) < 2**16


def flow_action(rules: InterfaceRules) -> FlowAction | None:
    """The FlowSpec action for a failing packet on this interface, None when the mode is unusable."""
    act = rules.action
    if act.mode is Mode.DROP:
        return FlowAction(ActionKind.DISCARD)
    if act.mode is Mode.MONITOR:
        return FlowAction(ActionKind.SAMPLE)
    if act.mode is Mode.RATE_LIMIT:
        rate = round(act.rate)
        if rate <= 0:
            return FlowAction(ActionKind.DISCARD)
        return FlowAction(ActionKind.RATE_LIMIT, rate_bps=rate)
    if act.mode is Mode.REDIRECT and _redirect_ok(act.redirect):
        return FlowAction(ActionKind.REDIRECT, redirect=act.redirect)
    return None


Prefix = tuple[int, int, int]   # (version, address, length): integers, see aggregate.py


@dataclass(slots=True)
class _Interface:
    rules: InterfaceRules
    action: FlowAction
    blocks: dict[int, list[aggregate.Block]]   # per version


def _state_table(state: reaggregate.ListState, action: FlowAction
                 ) -> tuple[list[tuple[Prefix, FlowAction]], int]:
    """Minimal (prefix, action) entries of one aggregated list and its exact-cover rule count."""
    entries: list[tuple[Prefix, FlowAction]] = []
    cover = 0
    for version, family in sorted(state.families.items()):
        if not family.cover:   # a blocklist entirely inside the always-allowed blocks
            continue
        cover += _cover(state, family)
        entries += _entries(state, action, version, family.table)
    return entries, cover


def _cover(state: reaggregate.ListState, family: reaggregate.Family) -> int:
    """Exact-cover rule count of one family (an allowlist adds its default discard)."""
    return len(family.cover) + (0 if state.blocklist else 1)


def _entries(state: reaggregate.ListState, action: FlowAction, version: int, rows: aggregate.Table
             ) -> list[tuple[Prefix, FlowAction]]:
    """ORTC rows of one family as (prefix, action) entries: inside a blocklist the action, outside accept;
    an allowlist the other way round."""
    inside, outside = (action, ACCEPT) if state.blocklist else (ACCEPT, action)
    return [((version, addr, plen), inside if value == aggregate.IN else outside)
            for addr, plen, value in rows]


Entries = list[tuple[Prefix, FlowAction]]


@dataclass(frozen=True, slots=True)
class Aggregated:
    """One list's aggregation state with the action and table made from it: what the next version of the
    interface's list is patched from (reaggregate.update for the state, _patch_table for the table). When
    patched, `delta` holds the entries of `base` (the previous table's entries) that went and those that
    came: the incremental merge takes them instead of comparing two whole tables."""

    state: reaggregate.ListState
    action: FlowAction
    table: Table
    delta: tuple[Entries, Entries, Entries] | None = None   # (base entries, went, came)


def _patch_table(previous: Aggregated, state: reaggregate.ListState, action: FlowAction) -> Aggregated | None:
    """Aggregated(state, action, _state_table(state, action)) made from the previous table, when `state`
    was patched from previous.state: each patched family says which ORTC rows went and came (the rest of
    its table are the old rows), so only those become entries, put in place by binary search. None when a
    family appears, vanishes or empties, was not patched from the previous one, or the action changed:
    build the table whole."""
    old = previous.state
    if action != previous.action or old.families.keys() != state.families.keys():
        return None
    went: Entries = []
    came: Entries = []
    cover = 0
    for version, family in state.families.items():
        before = old.families[version]
        if not family.cover or not before.cover:
            return None
        cover += _cover(state, family)
        if family is before:
            continue
        if family.delta is None or family.delta[0] is not before.table:
            return None
        went += _entries(state, action, version, family.delta[1])
        came += _entries(state, action, version, family.delta[2])
    gone, new = set(went) - set(came), set(came) - set(went)   # a row made anew equal is no change
    entries = list(previous.table[0])
    for entry in sorted(gone, key=_entry_prefix, reverse=True):
        del entries[bisect.bisect_left(entries, entry[0], key=_entry_prefix)]
    for entry in sorted(new, key=_entry_prefix):
        bisect.insort(entries, entry, key=_entry_prefix)
    return Aggregated(state, action, (entries, cover), (previous.table[0], list(gone), list(new)))


def _entry_prefix(entry: tuple[Prefix, FlowAction]) -> Prefix:
    return entry[0]


def _parse(prefixes: tuple[str, ...]) -> dict[int, list[aggregate.Block]]:
    blocks: dict[int, list[aggregate.Block]] = {}
    for p in prefixes:
        version, addr, plen = aggregate.parse_prefix(p)
        blocks.setdefault(version, []).append((addr, plen))
    return blocks


def _validate(rules: InterfaceRules, events: list[Event],
              parsed: dict[tuple[str, ...], dict[int, list[aggregate.Block]]]) -> _Interface | None:
    """Parse one interface's list (once per distinct list: `parsed`); None (skip the interface: fail
    open) with an event when unusable."""
    where = {"router": rules.router, "interface": rules.interface}
    action = flow_action(rules)
    if action is None:
        events.append(_event("flowspec.bad-action", Severity.ERROR,
                             f"unusable action {rules.action} on {rules.router}:{rules.interface}; "
                             "interface left unfiltered", True, **where))
        return None
    try:
        blocks = parsed.get(rules.prefixes)
        if blocks is None:
            blocks = parsed[rules.prefixes] = _parse(rules.prefixes)
    except ValueError as exc:
        events.append(_event("flowspec.bad-prefix", Severity.ERROR,
                             f"{rules.router}:{rules.interface}: {exc}; interface left unfiltered", True,
                             **where))
        return None
    if rules.kind is ListKind.ALLOW and not blocks:
        events.append(_event("flowspec.empty-allowlist", Severity.WARNING,
                             f"{rules.router}:{rules.interface}: empty allowlist ignored (fail open)", False,
                             **where))
        return None
    return _Interface(rules, action, blocks)


SortKey = tuple[int, int, int, int, int]   # FlowMatch.order_key, computed from the integers


def _merge(router: str, tables: list[tuple[list[int], list[tuple[Prefix, FlowAction]]]], max_groups: int
           ) -> list[FlowRule] | None:
    """One rule per (prefix, action) with the union of groups, split into rules of at most `max_groups`
    groups; every rule of one prefix gets a distinct NLRI. None when a prefix needs more variants than
    there are discriminators. Returned in RFC 8955 order (FlowMatch.order_key, from the integers)."""
    by_prefix: dict[Prefix, dict[FlowAction, set[int]]] = defaultdict(lambda: defaultdict(set))
    for groups, entries in tables:
        for prefix, action in entries:
            by_prefix[prefix][action].update(groups)
    keyed: list[tuple[SortKey, FlowRule]] = []
    for prefix, actions in by_prefix.items():
        rules = prefix_rules(router, prefix, actions, max_groups)
        if rules is None:
            return None
        keyed += rules
    keyed.sort(key=lambda kr: kr[0])
    return [rule for _, rule in keyed]


def prefix_rules(router: str, prefix: Prefix, actions: Mapping[FlowAction, set[int]], max_groups: int
                 ) -> list[tuple[SortKey, FlowRule]] | None:
    """The rules of one source prefix with their RFC 8955 sort keys: one per (action, chunk of at most
    `max_groups` groups), actions in FlowAction.sort_key order, the first without discriminator. None
    when they need more than MAX_DISCRIMINATORS + 1 distinct NLRI. Shared by the full and the
    incremental merge (incremental.py), so both emit the very same rules."""
    version, addr, plen = prefix
    variants = [(action, chunk) for action in sorted(actions, key=FlowAction.sort_key)
                for chunk in _chunks(sorted(actions[action]), max_groups)]
    if len(variants) > MAX_DISCRIMINATORS + 1:
        return None
    text = aggregate.format_prefix(version, addr, plen)
    last = addr + (1 << (aggregate.WIDTH[version] - plen)) - 1
    out: list[tuple[SortKey, FlowRule]] = []
    for i, (action, chunk) in enumerate(variants):
        disc = None if i == 0 else i - 1
        out.append(((version, last, -plen, 0 if disc is not None else 1, disc or 0),
                    FlowRule(router, FlowMatch(text, disc), action, chunk)))
    return out


def _chunks(groups: list[int], size: int) -> list[tuple[int, ...]]:
    return [tuple(groups[i:i + size]) for i in range(0, len(groups), size)]


Table = tuple[list[tuple[Prefix, FlowAction]], int]   # (entries, exact cover count) of one list
TableKey = tuple[ListKind, FlowAction, tuple[str, ...], tuple[str, ...]]


class TableCache:
    """Aggregated tables of the lists seen by earlier compiles, least recently used first out.

    Passing one to `compile_ruleset` makes a recompile after a change re-aggregate only the lists that
    changed (the engine recomputes one interface, the rest are equal tuples). The output is the same
    with or without it; it only holds derived values, so the compiler stays a function of its inputs.
    """

    def __init__(self, max_lists: int = 4096) -> None:
        self.max_lists = max_lists
        self._tables: OrderedDict[TableKey, Table] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: TableKey) -> Table | None:
        table = self._tables.get(key)
        if table is None:
            self.misses += 1
            return None
        self.hits += 1
        self._tables.move_to_end(key)
        return table

    def put(self, key: TableKey, table: Table) -> None:
        self._tables[key] = table
        while len(self._tables) > self.max_lists:
            self._tables.popitem(last=False)


def exempt_blocks(options: CompileOptions) -> dict[int, list[aggregate.Block]]:
    """`always_allowed` as integer blocks per IP version."""
    exempt: dict[int, list[aggregate.Block]] = {}
    for text in options.always_allowed:
        version, addr, plen = aggregate.parse_prefix(text)
        exempt.setdefault(version, []).append((addr, plen))
    return exempt


def list_table(rules: InterfaceRules, options: CompileOptions, cache: TableCache,
               exempt: dict[int, list[aggregate.Block]],
               parsed: dict[tuple[str, ...], dict[int, list[aggregate.Block]]], events: list[Event]
               ) -> Table | None:
    """The aggregated table of one list (from `cache` when seen before), None with an event when the list
    is unusable (fail open). `parsed` shares parsing between equal lists within one compile."""
    found = list_table_state(rules, options, cache, exempt, parsed, events, None)
    return None if found is None else found[0]


def list_table_state(rules: InterfaceRules, options: CompileOptions, cache: TableCache,
                     exempt: dict[int, list[aggregate.Block]],
                     parsed: dict[tuple[str, ...], dict[int, list[aggregate.Block]]], events: list[Event],
                     previous: Aggregated | None) -> tuple[Table, Aggregated | None] | None:
    """list_table, and the aggregation to patch the next version of the list from. With `previous` (the
    aggregation of an earlier list of the same interface, same always-allowed blocks), a list missing
    from `cache` is aggregated by patching it (reaggregate.update, then _patch_table: work proportional
    to the difference); without, from scratch. A cache hit does no aggregation work: it hands `previous`
    on (None if of the other list kind), and the next miss patches from that earlier version."""
    action = flow_action(rules)
    key = (rules.kind, action, rules.prefixes, options.always_allowed) if action else None
    table = cache.get(key) if key is not None else None
    if previous is not None and previous.state.blocklist != (rules.kind is ListKind.BLOCK):
        previous = None
    if table is not None:
        return table, previous
    state = reaggregate.update(previous.state, rules.prefixes, exempt) if previous and action else None
    made = None
    if state is None or action is None:
        iface = _validate(rules, events, parsed)
        if iface is None:
            return None
        action = iface.action
        state = reaggregate.build(rules.kind is ListKind.BLOCK, rules.prefixes, iface.blocks, exempt)
    elif previous is not None:
        made = _patch_table(previous, state, action)
    made = made or Aggregated(state, action, _state_table(state, action))
    cache.put((rules.kind, action, rules.prefixes, options.always_allowed), made.table)
    return made.table, made


def _tables(lists: list[InterfaceRules], options: CompileOptions, cache: TableCache, events: list[Event]
            ) -> list[tuple[str, Table]]:
    """(interface, table) of every usable list; unusable ones are skipped with an event (fail open)."""
    exempt = exempt_blocks(options)
    parsed: dict[tuple[str, ...], dict[int, list[aggregate.Block]]] = {}
    out: list[tuple[str, Table]] = []
    for rules in lists:
        table = list_table(rules, options, cache, exempt, parsed, events)
        if table is not None:
            out.append((rules.interface, table))
    return out


def _compile_router(router: str, lists: list[InterfaceRules], learned: list[BgpPath],
                    options: CompileOptions, events: list[Event], cache: TableCache) -> RouterFlowSpec:
    per_iface = _tables(lists, options, cache, events)
    try:
        groups = assign_groups(router, (name for name, _ in per_iface), options.group_ids)
    except ValueError as exc:
        return bad_groups(router, exc, events)
    gid = {g.interface: g.group_id for g in groups}
    shared: dict[int, tuple[list[int], list[tuple[Prefix, FlowAction]]]] = {}   # one pass per distinct list
    for name, (entries, _) in per_iface:
        shared.setdefault(id(entries), ([], entries))[0].append(gid[name])
    tables = list(shared.values())
    cover = sum(n for _, (_, n) in per_iface)
    usable = [r for r in lists if r.interface in gid]
    merged = _merge(router, tables, options.max_groups_per_rule)
    return finish_router(router, merged, groups, cover, usable, learned, options, events)


def finish_router(router: str, merged: Sequence[FlowRule] | None, groups: tuple[InterfaceGroup, ...],
                  cover: int, usable: list[InterfaceRules], learned: list[BgpPath], options: CompileOptions,
                  events: list[Event]) -> RouterFlowSpec:
    """The router's plan from its merged rules (None: a prefix needs too many variants), after the
    guardrails; each refusal appends its event."""
    if merged is None:
        events.append(_event("flowspec.too-many-actions", Severity.ERROR,
                             f"{router}: a prefix needs over {MAX_DISCRIMINATORS + 1} distinct (action, "
                             "interface chunk) rules",
                             True, router=router))
        return _refused(router, groups, cover)
    stats = RouterStats(len(merged), cover)
    if len(merged) > options.max_rules_per_router:
        events.append(_event("flowspec.too-many-rules", Severity.ERROR,
                             f"{router}: {len(merged)} rules over the limit {options.max_rules_per_router}; "
                             "rule set refused", True, router=router, rules=str(len(merged)),
                             limit=str(options.max_rules_per_router)))
        return _refused(router, groups, cover)
    if not _learned_ok(router, usable, learned, options.force, events):
        return _refused(router, groups, cover)
    return RouterFlowSpec(router, tuple(merged), groups, stats)


def bad_groups(router: str, exc: ValueError, events: list[Event]) -> RouterFlowSpec:
    """The refused plan of a router whose interface groups cannot be assigned."""
    events.append(_event("flowspec.bad-groups", Severity.ERROR, str(exc), True, router=router))
    return RouterFlowSpec(router, (), (), RouterStats(0, 0), refused=True)


def _refused(router: str, groups: tuple[InterfaceGroup, ...], cover: int) -> RouterFlowSpec:
    return RouterFlowSpec(router, (), groups, RouterStats(0, cover), refused=True)


def _learned_ok(router: str, lists: list[InterfaceRules], learned: list[BgpPath], force: bool,
                events: list[Event]) -> bool:
    found = violations(lists, learned)
    if not found:
        return True
    sample = "; ".join(f"{v.path.prefix} learned on {v.path.interface} (blocked by {v.blocked})"
                       for v in found[:5])
    fields = {"router": router, "count": str(len(found)), "interface": found[0].path.interface,
              "prefix": found[0].path.prefix}
    if force:
        events.append(_event("flowspec.forced", Severity.WARNING,
                             f"{router}: forced; {len(found)} learned routes would be blocked: {sample}",
                             True, **fields))
        return True
    events.append(_event("flowspec.refused", Severity.ERROR,
                         f"{router}: refused; {len(found)} learned routes would be blocked: {sample}",
                         True, **fields))
    return False


def compile_ruleset(ruleset: SavRuleSet, options: CompileOptions | None = None,
                    learned: Iterable[BgpPath] = (), cache: TableCache | None = None) -> FlowSpecPlan:
    """Compile every router's FlowSpec-delivered lists; `learned` feeds the blocked-route guardrail;
    `cache` (optional, kept by the caller between compiles) makes recompiles incremental."""
    options = options or CompileOptions()
    cache = cache if cache is not None else TableCache()
    events: list[Event] = []
    per_router, paths = split_routers(ruleset, learned, events)
    plans = tuple(_compile_router(r, per_router[r], paths[r], options, events, cache)
                  for r in sorted(per_router))
    return with_steering(FlowSpecPlan(plans, tuple(events)), ruleset.steering, options.max_rules_per_router)


def split_routers(ruleset: SavRuleSet, learned: Iterable[BgpPath], events: list[Event]
                  ) -> tuple[dict[str, list[InterfaceRules]], dict[str, list[BgpPath]]]:
    """The FlowSpec-delivered lists and the learned paths of each router (duplicates dropped, with an
    event)."""
    per_router: dict[str, list[InterfaceRules]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for rules in ruleset.rules:
        if rules.delivery is not Delivery.FLOWSPEC:
            continue
        if rules.key() in seen:
            events.append(_event("flowspec.duplicate-interface", Severity.ERROR,
                                 f"{rules.router}:{rules.interface} listed twice; later list ignored", True,
                                 router=rules.router, interface=rules.interface))
            continue
        seen.add(rules.key())
        per_router[rules.router].append(rules)
    paths: dict[str, list[BgpPath]] = defaultdict(list)
    for p in learned:
        if p.router in per_router:
            paths[p.router].append(p)
    return per_router, paths
