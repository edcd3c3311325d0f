"""Property: the incremental compiler, fed a sequence of randomly edited rule sets, returns after every
step exactly the plan `compile_ruleset` builds from scratch (rules, order, groups, stats, refusals and
events), and a step that changes nothing re-merges nothing."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.flowspec import CompileOptions, TableCache, compile_ruleset, reaggregate
from appliance.flowspec.incremental import Compiler
from appliance.model import Action, BgpPath, Delivery, InterfaceRules, ListKind, Mode, SavRuleSet

ROUTERS = ("r1", "r2")
IFACES = ("eth1", "eth2", "eth3", "eth19", "eth77")   # eth19 and eth77 share a CRC group ID: eth77 moves


def _v4(bits: int, length: int) -> str:
    addr = int(ipaddress.IPv4Address("198.18.0.0")) + ((bits << 8) & ((1 << 17) - 1))
    return str(ipaddress.IPv4Network((addr, length), strict=False))


def _v6(bits: int, length: int) -> str:
    addr = int(ipaddress.IPv6Address("2001:db8::")) + ((bits << 88) & ((1 << 96) - 1))
    return str(ipaddress.IPv6Network((addr, length), strict=False))


prefixes = st.one_of(
    st.builds(_v4, st.integers(0, 2**9 - 1), st.integers(15, 26)),
    st.builds(_v6, st.integers(0, 2**6 - 1), st.integers(32, 40)),
    st.sampled_from(["0.0.0.0/0", "::/0", "fe80::/64", "198.18.1.1/24"]),   # the last is malformed
)
actions = st.sampled_from([Action(Mode.DROP), Action(Mode.MONITOR), Action(Mode.RATE_LIMIT, 12500.0),
                           Action(Mode.REDIRECT, redirect="65001:100"),
                           Action(Mode.REDIRECT, redirect="bogus")])
prefix_lists = st.lists(prefixes, max_size=8).map(lambda ps: tuple(sorted(set(ps))))


@st.composite
def lists(draw: st.DrawFn, shared: tuple[str, ...]) -> InterfaceRules:
    prefixes_ = shared if draw(st.booleans()) else draw(prefix_lists)   # shared: one tuple object
    delivery = Delivery.FLOWSPEC if draw(st.integers(0, 9)) else Delivery.ACL
    return InterfaceRules(draw(st.sampled_from(ROUTERS)), draw(st.sampled_from(IFACES)),
                          draw(st.sampled_from(list(ListKind))), prefixes_, draw(actions), delivery)


@st.composite
def edit_sequences(draw: st.DrawFn) -> list[SavRuleSet]:
    shared = draw(prefix_lists)
    current = {r.key(): r for r in draw(st.lists(lists(shared), max_size=8))}
    out = [SavRuleSet(tuple(current[k] for k in sorted(current)))]
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["replace", "remove", "add", "same", "shared", "prefix"]))
        keys = sorted(current)
        if op == "remove" and keys:
            del current[draw(st.sampled_from(keys))]
        elif op in ("replace", "add") or not keys:
            rule = draw(lists(shared))
            current[rule.key()] = rule
        elif op == "shared":   # the list shared by several interfaces changes everywhere at once
            shared = draw(prefix_lists)
            for k in keys:
                if draw(st.booleans()):
                    current[k] = dataclasses.replace(current[k], prefixes=shared)
        elif op == "prefix":   # one prefix more or less on one interface, as a path change does
            key = draw(st.sampled_from(keys))
            extra = draw(prefixes)
            old = current[key].prefixes
            new = tuple(p for p in old if p != extra) if extra in old else tuple(sorted((*old, extra)))
            current[key] = dataclasses.replace(current[key], prefixes=new)
        else:                  # equal rules, new objects: the engine's output after an unrelated change
            current = {k: dataclasses.replace(r) for k, r in current.items()}
        out.append(SavRuleSet(tuple(current[k] for k in sorted(current))))
    return out


options_ = st.builds(
    CompileOptions,
    max_rules_per_router=st.sampled_from([10_000, 6]),
    force=st.booleans(),
    max_groups_per_rule=st.sampled_from([1, 2, 256]),
    group_ids=st.sampled_from([{}, {("r1", "eth2"): 7}, {("r1", "eth1"): 5, ("r1", "eth3"): 5}]),
)
learned_paths = st.lists(st.builds(BgpPath, st.sampled_from(ROUTERS), st.sampled_from(IFACES),
                                   prefixes.filter(lambda p: p != "198.18.1.1/24"), st.just((64512,))),
                         max_size=3)


@settings(max_examples=300, deadline=None)
@given(edit_sequences(), options_, st.lists(learned_paths, min_size=1, max_size=3),
       st.sampled_from([1, 4096]))
def test_incremental_compile_equals_a_compile_from_scratch(steps: list[SavRuleSet], options: CompileOptions,
                                                          learned: list[list[BgpPath]],
                                                          cache_size: int) -> None:
    compiler = Compiler(options, TableCache(max_lists=cache_size))
    for i, ruleset in enumerate(steps):
        paths = learned[i % len(learned)]
        got = compiler.compile(ruleset, paths)
        assert got == compile_ruleset(ruleset, options, paths), i
        assert compiler.compile(ruleset, paths) == got
        assert compiler.merged_prefixes == 0   # nothing changed: nothing merged again


def test_one_changed_list_re_merges_only_its_prefixes() -> None:
    base = [InterfaceRules("r1", f"eth{i}", ListKind.BLOCK, (_v4(i * 4, 24),)) for i in range(100)]
    compiler = Compiler()
    compiler.compile(SavRuleSet.of(base))
    assert compiler.merged_prefixes == 100
    changed = [*base[:-1], dataclasses.replace(base[-1], prefixes=(_v4(99 * 4, 24), _v4(500, 24)))]
    plan = compiler.compile(SavRuleSet.of(changed))
    assert compiler.merged_prefixes == 1
    assert plan == compile_ruleset(SavRuleSet.of(changed))


def test_a_group_id_that_moves_rebuilds_the_router() -> None:
    """eth77 takes eth19's CRC group ID + 1 while eth19 is there, its own once eth19 is gone."""
    both = SavRuleSet.of([InterfaceRules("r1", "eth19", ListKind.BLOCK, ("198.18.0.0/24",)),
                          InterfaceRules("r1", "eth77", ListKind.BLOCK, ("198.18.1.0/24",))])
    alone = SavRuleSet.of([both.rules[1]])
    compiler = Compiler()
    assert compiler.compile(both) == compile_ruleset(both)
    plan = compiler.compile(alone)
    assert plan == compile_ruleset(alone)
    assert plan.routers[0].rules[0].groups != compile_ruleset(both).routers[0].rules[1].groups


def test_interfaces_sharing_an_unusable_list_each_get_their_event() -> None:
    bad = ("198.18.1.1/24",)
    ruleset = SavRuleSet(tuple(InterfaceRules("r1", f"eth{i}", ListKind.BLOCK, bad) for i in (1, 2)))
    plan = Compiler().compile(ruleset)
    assert [(e.type, e.fields["interface"]) for e in plan.events] == [("flowspec.bad-prefix", "eth1"),
                                                                       ("flowspec.bad-prefix", "eth2")]
    assert plan == compile_ruleset(ruleset)


def test_a_list_that_loses_a_prefix_is_patched_not_rebuilt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The interface's previous list is the starting point: no aggregation from scratch (issue 13)."""
    big = tuple(_v4(i, 24) for i in range(0, 400, 3))
    rules = [InterfaceRules("r1", "eth1", ListKind.ALLOW, big),
             InterfaceRules("r1", "eth2", ListKind.BLOCK, big)]
    compiler = Compiler()
    compiler.compile(SavRuleSet.of(rules))
    monkeypatch.setattr(reaggregate, "build", None)   # any call fails
    for i in (1, 2):
        smaller = SavRuleSet.of([dataclasses.replace(r, prefixes=big[:i] + big[i + 1:]) for r in rules])
        plan = compiler.compile(smaller)
        monkeypatch.undo()
        assert plan == compile_ruleset(smaller)
        monkeypatch.setattr(reaggregate, "build", None)
