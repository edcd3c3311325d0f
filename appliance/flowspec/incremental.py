"""Incremental FlowSpec compile: the plan `compile_ruleset` would give, with work proportional to the change.

The daemon recompiles after every engine run, and most runs change one interface's list or none. A full
compile re-merges every router's tables (one pass over all entries, a sort of every prefix's groups, a
sort of all rules): about 2 s for 1,000 customer interfaces sharing a 9,648-prefix list. `Compiler`
keeps, per router, what it compiled last and updates it:
- a router whose lists and learned paths are unchanged (same objects, or equal in every field the
  compiler reads) keeps its plan and events as they were: no merge, no guardrail;
- otherwise only the lists that differ are aggregated again (via the TableCache; a list that replaces
  another on the same interface is patched from that one's aggregation state, reaggregate.py), and the
  merge state (per prefix: the interface groups of each action) takes the difference between each changed
  interface's old and new table; the rules of the touched prefixes are rebuilt with the full
  compiler's own `prefix_rules` and put in place in the sorted rule list by binary search;
- when an interface keeps its name but its group ID moves (groups.py renumbers on collisions) or the
  groups cannot be assigned, that router's merge starts from scratch.
The output equals `compile_ruleset(ruleset, options, learned)` (tests/unit/flowspec/
test_incremental_property.py edits rule sets at random and compares). Pure: no I/O, clock or logging;
one caller at a time (the state is mutated in place).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from appliance.flowspec import aggregate
from appliance.flowspec.compiler import (
    Aggregated,
    CompileOptions,
    Entries,
    Prefix,
    SortKey,
    Table,
    TableCache,
    bad_groups,
    exempt_blocks,
    finish_router,
    list_table_state,
    prefix_rules,
    split_routers,
)
from appliance.flowspec.diff import FlowStep, diff
from appliance.flowspec.groups import assign_groups
from appliance.flowspec.rules import FlowAction, FlowRule, FlowSpecPlan, RouterFlowSpec
from appliance.flowspec.steering import with_steering
from appliance.model import BgpPath, Event, InterfaceRules, SavRuleSet


def same_input(a: InterfaceRules, b: InterfaceRules) -> bool:
    """Equal in every field the compiler reads (provenance and algorithm do not change a rule)."""
    return a is b or (a.kind is b.kind and a.action == b.action and a.delivery is b.delivery
                      and a.router == b.router and a.interface == b.interface
                      and (a.prefixes is b.prefixes or a.prefixes == b.prefixes))   # == walks the tuple


def _same_lists(old: Sequence[InterfaceRules], new: Sequence[InterfaceRules]) -> bool:
    return len(old) == len(new) and all(same_input(a, b) for a, b in zip(old, new, strict=True))


class _Merge:
    """The merged rules of one router: per prefix the interface groups of each action, and every rule
    in RFC 8955 order (`keys` sorted, `rules` aligned with it)."""

    def __init__(self, router: str, max_groups: int) -> None:
        self.router, self.max_groups = router, max_groups
        self.members: dict[Prefix, dict[FlowAction, set[int]]] = {}
        self.emitted: dict[Prefix, list[SortKey]] = {}
        self.keys: list[SortKey] = []
        self.rules: list[FlowRule] = []
        self.overfull: set[Prefix] = set()   # prefixes needing more NLRI variants than exist
        self.went: list[FlowRule] = []   # the last refresh's rules of the touched prefixes, before
        self.came: list[FlowRule] = []   # and after

    def add(self, entries: Iterable[tuple[Prefix, FlowAction]], gids: set[int], touched: set[Prefix]) -> None:
        members = self.members
        for prefix, action in entries:
            members.setdefault(prefix, {}).setdefault(action, set()).update(gids)
            touched.add(prefix)

    def remove(self, entries: Iterable[tuple[Prefix, FlowAction]], gids: set[int],
               touched: set[Prefix]) -> None:
        members = self.members
        for prefix, action in entries:
            actions = members[prefix]
            actions[action] -= gids
            if not actions[action]:
                del actions[action]
            if not actions:
                del members[prefix]
            touched.add(prefix)

    def refresh(self, touched: set[Prefix]) -> None:
        """Rebuild the rules of the touched prefixes and put them in order."""
        gone: list[SortKey] = []
        fresh: list[tuple[SortKey, FlowRule]] = []
        self.went, self.came = [], []
        for prefix in touched:
            gone += self.emitted.pop(prefix, ())
            self.overfull.discard(prefix)
            actions = self.members.get(prefix)
            if not actions:
                continue
            rules = prefix_rules(self.router, prefix, actions, self.max_groups)
            if rules is None:
                self.overfull.add(prefix)
                continue
            self.emitted[prefix] = [k for k, _ in rules]
            fresh += rules
        self.came = [r for _, r in fresh]
        if len(gone) + len(fresh) > len(self.keys) // 8 + 64:
            self._resort(set(gone), fresh)
            return
        keys, rules_ = self.keys, self.rules
        for key in gone:
            i = bisect.bisect_left(keys, key)
            self.went.append(rules_[i])
            del keys[i], rules_[i]
        for key, rule in fresh:
            i = bisect.bisect_left(keys, key)
            keys.insert(i, key)
            rules_.insert(i, rule)

    def _resort(self, gone: set[SortKey], fresh: list[tuple[SortKey, FlowRule]]) -> None:
        """Many rules moved: one sort beats that many list insertions."""
        keyed = [kr for kr in zip(self.keys, self.rules, strict=True) if kr[0] not in gone] + fresh
        self.went = [r for k, r in zip(self.keys, self.rules, strict=True) if k in gone]
        keyed.sort(key=lambda kr: kr[0])
        self.keys = [k for k, _ in keyed]
        self.rules = [r for _, r in keyed]


@dataclass(slots=True)
class _Router:
    """What was compiled for one router last time, and its result."""

    lists: list[InterfaceRules] = field(default_factory=list)
    learned: list[BgpPath] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)        # usable interfaces only
    # per interface, the aggregation of its list or of an earlier one: the next changed list patches it
    states: dict[str, Aggregated] = field(default_factory=dict)
    iface_events: dict[str, tuple[Event, ...]] = field(default_factory=dict)
    gid: dict[str, int] = field(default_factory=dict)
    merge: _Merge | None = None
    plan: RouterFlowSpec | None = None
    events: tuple[Event, ...] = ()
    step: FlowStep | None = None   # from the plan before to this one, when the merge was updated in place


class Compiler:
    """`compile_ruleset` with memory: `compile(ruleset, learned)` returns the same plan, updating the
    previous one in place of building it anew (see the module docstring)."""

    def __init__(self, options: CompileOptions | None = None, cache: TableCache | None = None) -> None:
        self.options = options or CompileOptions()
        self.cache = cache if cache is not None else TableCache()
        self._exempt = exempt_blocks(self.options)
        self._routers: dict[str, _Router] = {}
        self.merged_prefixes = 0   # prefixes re-merged by the last compile, for tests and the bench
        self.steps: dict[str, FlowStep] = {}   # per router changed in place by the last compile

    def compile(self, ruleset: SavRuleSet, learned: Iterable[BgpPath] = ()) -> FlowSpecPlan:
        events: list[Event] = []
        per_router, paths = split_routers(ruleset, learned, events)
        self.merged_prefixes = 0
        plans = []
        for router in sorted(per_router):
            state = self._routers.setdefault(router, _Router())
            self._update(router, state, per_router[router], paths[router])
            assert state.plan is not None
            plans.append(state.plan)
            events += state.events
        for gone in self._routers.keys() - per_router.keys():
            del self._routers[gone]
        self.steps = {r: s.step for r, s in self._routers.items() if s.step is not None}
        return with_steering(FlowSpecPlan(tuple(plans), tuple(events)), ruleset.steering,
                             self.options.max_rules_per_router)

    def _update(self, router: str, state: _Router, lists: list[InterfaceRules], learned: list[BgpPath]
                ) -> None:
        if state.plan is not None and _same_lists(state.lists, lists) and state.learned == learned:
            return
        old_tables, old_gid = state.tables, state.gid
        before, merge, state.step = state.plan, state.merge, None
        self._tables(state, lists)
        events = [e for r in lists for e in state.iface_events.get(r.interface, ())]
        try:
            groups = assign_groups(router, state.tables, self.options.group_ids)
        except ValueError as exc:
            state.merge, state.gid = None, {}
            state.plan = bad_groups(router, exc, events)
        else:
            state.gid = {g.interface: g.group_id for g in groups}
            merged = self._merge(router, state, old_tables, old_gid)
            cover = sum(state.tables[r.interface][1] for r in lists if r.interface in state.tables)
            usable = [r for r in lists if r.interface in state.gid]
            state.plan = finish_router(router, merged, groups, cover, usable, learned, self.options, events)
            if before is not None and not before.refused and not state.plan.refused and merge is state.merge:
                assert merge is not None
                state.step = FlowStep(before.rules, state.plan.rules, diff(merge.went, merge.came))
        state.lists, state.learned, state.events = lists, learned, tuple(events)

    def _tables(self, state: _Router, lists: list[InterfaceRules]) -> None:
        """Tables and events of the new lists; unchanged interfaces keep theirs."""
        before = {r.interface: r for r in state.lists}
        tables: dict[str, Table] = {}
        states: dict[str, Aggregated] = {}
        iface_events: dict[str, tuple[Event, ...]] = {}
        parsed: dict[tuple[str, ...], dict[int, list[aggregate.Block]]] = {}
        # a list shared by many interfaces is one tuple object: key it by identity, so the cache hashes
        # its prefixes once per compile rather than once per interface (the lists live until we return)
        Found = tuple[Table, Aggregated | None] | None
        shared: dict[tuple[int, object, object], tuple[Found, tuple[Event, ...]]] = {}
        for rules in lists:
            name = rules.interface
            old = before.get(name)
            if old is not None and same_input(old, rules):
                if name in state.tables:
                    tables[name] = state.tables[name]
                if name in state.states:
                    states[name] = state.states[name]
                iface_events[name] = state.iface_events.get(name, ())
                continue
            memo = (id(rules.prefixes), rules.kind, rules.action)
            if memo in shared and not shared[memo][1]:   # events name the interface: never shared
                result = shared[memo][0]
            else:
                events: list[Event] = []
                result = list_table_state(rules, self.options, self.cache, self._exempt, parsed, events,
                                          state.states.get(name))
                shared[memo] = (result, tuple(events))
                iface_events[name] = tuple(events)
            if result is not None:
                tables[name] = result[0]
                if result[1] is not None:
                    states[name] = result[1]
        state.tables, state.states, state.iface_events = tables, states, iface_events

    def _merge(self, router: str, state: _Router, old_tables: dict[str, Table], old_gid: dict[str, int]
               ) -> Sequence[FlowRule] | None:
        """Update (or rebuild) the router's merge from the old to the new tables; None when a prefix
        needs too many variants."""
        gid = state.gid
        merge = state.merge
        if merge is None or any(old_gid[n] != g for n, g in gid.items() if n in old_gid):
            merge = state.merge = _Merge(router, self.options.max_groups_per_rule)
            old_tables, old_gid = {}, {}
        # interfaces whose table changed, grouped by (old entries, new entries): shared lists diff once
        pairs: dict[tuple[int, int], tuple[Entries | None, Entries | None, set[int]]] = {}
        for name in old_tables.keys() | state.tables.keys():
            old = old_tables.get(name)
            new = state.tables.get(name)
            old_e = old[0] if old is not None else None
            new_e = new[0] if new is not None else None
            if old_e is new_e:
                continue
            key = (id(old_e), id(new_e))
            if key not in pairs:
                pairs[key] = (old_e, new_e, set())
            pairs[key][2].add(gid[name] if new is not None else old_gid[name])
        touched: set[Prefix] = set()
        additions: list[tuple[Entries, set[int]]] = []
        patched = {id(a.table[0]): a.delta for a in state.states.values() if a.delta is not None}
        for old_e, new_e, gids in pairs.values():
            delta = patched.get(id(new_e))
            if delta is not None and delta[0] is old_e:
                went, came = delta[1], delta[2]
            else:
                went, came = _changed_entries(old_e or [], new_e or [])
            merge.remove(went, gids, touched)
            additions.append((came, gids))
        for entries, gids in additions:   # after every removal: a group ID may pass between interfaces
            merge.add(entries, gids, touched)
        merge.refresh(touched)
        self.merged_prefixes += len(touched)
        return None if merge.overfull else merge.rules


def _changed_entries(old: Entries, new: Entries) -> tuple[list[tuple[Prefix, FlowAction]],
                                                          list[tuple[Prefix, FlowAction]]]:
    """(gone, came) between two tables of one interface. A patched table keeps the entries it did not
    change as the same objects (compiler._patch_table), so the candidates are found by identity in C and
    only they are compared by value (hashing an entry hashes its FlowAction in Python)."""
    old_by_id = dict(zip(map(id, old), old, strict=True))
    new_by_id = dict(zip(map(id, new), new, strict=True))
    went = {old_by_id[i] for i in old_by_id.keys() - new_by_id.keys()}
    came = {new_by_id[i] for i in new_by_id.keys() - old_by_id.keys()}
    return list(went - came), list(came - went)
