"""One list's aggregation, kept so that the next version of the list is aggregated from the difference.

The engine recomputes one interface at a time, and a recomputed list usually differs from the previous
one by a few prefixes, yet aggregating it from scratch (parse, exact cover, ORTC) costs ~100 ms for a
10,000-prefix list. `ListState` keeps, per address family, the parsed prefixes, the exact cover and the
ORTC table of one list; `update` derives the state of a new list from it by parsing only the added and
removed prefixes, re-cutting the cover only around them (aggregate.patch_cover) and re-running ORTC only
on the trie paths above them (aggregate.patch_table). `build` is the from-scratch path and the reference:
tests/unit/flowspec/test_reaggregate_property.py checks that both give the same result. Pure; a state is
never mutated once returned (several interfaces may start from the same one).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from appliance.flowspec import aggregate
from appliance.flowspec.aggregate import Block

Exempt = dict[int, list[Block]]   # always-allowed blocks per IP version


@dataclass(frozen=True, slots=True)
class Family:
    """One address family of a list: what `update` needs to patch it, and the result."""

    width: int
    listed: int                  # distinct listed prefixes of this family (without the exempt blocks)
    inputs: dict[Block, int]     # listed blocks (and, in an allowlist, the exempt ones) -> multiplicity
    ordered: list[Block]         # the keys of `inputs`, sorted
    cover: list[Block]           # the exact cover of the listed set (after the exemptions)
    table: aggregate.Table       # minimal_table(cover)
    # the trie's candidate sets; a patched family keeps entries of nodes gone from the trie, so only
    # the table and the cover are compared, and `update` starts over once they double
    sets: aggregate.Sets = field(compare=False, repr=False)
    built_sets: int = field(compare=False)   # len(sets) after the last build
    # when patched: the table it was patched from, its rows dropped and the rows made anew (the other rows
    # are that table's own objects), so the compiler turns only those into FlowSpec entries
    delta: tuple[aggregate.Table, aggregate.Table, aggregate.Table] | None = field(
        default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ListState:
    """One list aggregated: equal to `build` of its prefixes whichever way it was made."""

    blocklist: bool
    prefixes: frozenset[str]
    families: dict[int, Family]  # only the families the list names


def _exact(blocklist: bool, blocks: list[Block], exempt: list[Block], width: int) -> list[Block]:
    """The set a list describes: a blocklist minus the exempt blocks, an allowlist plus them."""
    if blocklist:
        return aggregate.subtract(aggregate.cover_blocks(blocks, width), exempt, width)
    return aggregate.cover_blocks(blocks + exempt, width)


def _default(blocklist: bool) -> int:
    """The value of an address that no rule matches: outside a blocklist, inside an allowlist."""
    return aggregate.OUT if blocklist else aggregate.IN


def build(blocklist: bool, prefixes: tuple[str, ...], blocks: dict[int, list[Block]], exempt: Exempt
          ) -> ListState:
    """The state of a list aggregated from scratch (`blocks`: its prefixes parsed, per version)."""
    distinct = frozenset(prefixes)
    counted = blocks   # `update` counts each distinct text once: a repeated text is parsed again here
    if len(distinct) != len(prefixes):
        counted = {}
        for text in distinct:
            version, addr, plen = aggregate.parse_prefix(text)
            counted.setdefault(version, []).append((addr, plen))
    families: dict[int, Family] = {}
    for version, listed in blocks.items():
        width = aggregate.WIDTH[version]
        cover = _exact(blocklist, listed, exempt.get(version, []), width)
        inputs: dict[Block, int] = {}
        for b in counted[version] + ([] if blocklist else exempt.get(version, [])):
            inputs[b] = inputs.get(b, 0) + 1
        table, sets = aggregate.minimal_table_sets(cover, width, _default(blocklist)) if cover else ([], {})
        families[version] = Family(width, len(counted[version]), inputs, sorted(inputs), cover, table, sets,
                                   len(sets))
    return ListState(blocklist, distinct, families)


def update(state: ListState, prefixes: tuple[str, ...], exempt: Exempt, max_share: float = 0.125
           ) -> ListState | None:
    """The state of the list `prefixes` derived from `state`, or None when `build` should be used: a
    prefix does not parse (the full path reports it), a family appears or vanishes, or more than
    `max_share` of the list changed (patching then costs more than starting over)."""
    new = frozenset(prefixes)
    added, removed = new - state.prefixes, state.prefixes - new
    if len(added) + len(removed) > max_share * len(new) + 16:
        return None
    changes: dict[int, list[tuple[Block, int]]] = {}
    try:
        for text, step in [*((t, 1) for t in sorted(added)), *((t, -1) for t in sorted(removed))]:
            version, addr, plen = aggregate.parse_prefix(text)
            changes.setdefault(version, []).append(((addr, plen), step))
    except ValueError:
        return None
    families = dict(state.families)
    for version, edits in changes.items():
        old = families.get(version)
        listed = (old.listed if old else 0) + sum(step for _, step in edits)
        if old is None or listed == 0:
            return None
        family = _patch(state.blocklist, old, edits, listed, exempt.get(version, []))
        if len(family.sets) > 2 * family.built_sets + 1024:
            return None
        families[version] = family
    return ListState(state.blocklist, new, families)


def _patch(blocklist: bool, old: Family, edits: list[tuple[Block, int]], listed: int, exempt: list[Block]
           ) -> Family:
    """One family after adding (+1) and removing (-1) the blocks in `edits`."""
    width = old.width
    inputs, ordered = dict(old.inputs), list(old.ordered)
    for block, step in edits:
        count = inputs.get(block, 0) + step
        if count:
            if block not in inputs:
                bisect.insort(ordered, block)
            inputs[block] = count
        else:
            del inputs[block]
            del ordered[bisect.bisect_left(ordered, block)]
    changed = aggregate.cover_blocks([b for b, _ in edits], width)
    cover = old.cover
    for region in changed:
        inside = _inside(blocklist, inputs, ordered, region, exempt, width)
        cover = aggregate.patch_cover(cover, region, inside, width)
    if not cover:
        return Family(width, listed, inputs, ordered, cover, [], {}, 0)
    if not old.cover:   # nothing to patch: the old trie was empty
        table, sets = aggregate.minimal_table_sets(cover, width, _default(blocklist))
        return Family(width, listed, inputs, ordered, cover, table, sets, len(sets))
    table, sets, went, came = aggregate.patch_table(cover, width, _default(blocklist), old.table, old.sets,
                                                    changed)
    return Family(width, listed, inputs, ordered, cover, table, sets, old.built_sets, (old.table, went, came))


def _inside(blocklist: bool, inputs: dict[Block, int], ordered: list[Block], region: Block,
            exempt: list[Block], width: int) -> list[Block]:
    """The exact cover of the listed set within `region`: all of it when a listed block contains it,
    else the listed blocks inside it (blocks are aligned: they nest or are disjoint)."""
    addr, plen = region
    raw: list[Block] | None = None
    for length in range(plen, -1, -1):
        shift = width - length
        if ((addr >> shift) << shift, length) in inputs:
            raw = [region]
            break
    if raw is None:
        first = bisect.bisect_left(ordered, (addr,))
        raw = ordered[first:bisect.bisect_left(ordered, (addr + (1 << (width - plen)),), first)]
    if blocklist:
        return aggregate.subtract(aggregate.cover_blocks(raw, width), exempt, width)
    return aggregate.cover_blocks(raw, width)
