"""Property: a list aggregated by patching the state of an earlier version (reaggregate.update) equals the
same list aggregated from scratch (reaggregate.build): same exact cover, same ORTC table in the same
order, same bookkeeping, after every step of a random edit sequence, for IPv4 and IPv6, blocklists and
allowlists with exempt blocks inside the edited space. Prefixes are drawn from a small region so that
edits merge neighbours into one aggregate, split aggregates, and add or remove covering prefixes."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from appliance.flowspec import aggregate, reaggregate


def _v4(bits: int, length: int) -> str:
    addr = int(ipaddress.IPv4Address("198.18.0.0")) + ((bits << 6) & ((1 << 14) - 1))
    return str(ipaddress.IPv4Network((addr, length), strict=False))


def _v6(bits: int, length: int) -> str:
    addr = int(ipaddress.IPv6Address("2001:db8::")) + ((bits << 88) & ((1 << 96) - 1))
    return str(ipaddress.IPv6Network((addr, length), strict=False))


prefixes = st.one_of(
    st.builds(_v4, st.integers(0, 2**8 - 1), st.integers(17, 26)),
    st.builds(_v6, st.integers(0, 2**8 - 1), st.integers(30, 40)),
    st.sampled_from(["0.0.0.0/0", "::/0", "198.18.0.0/18", "2001:db8::/32", "198.18.3.0/24"]),
)
# exempt blocks inside the drawn region, so that they cut and extend aggregates
EXEMPTS = [{}, {4: [(int(ipaddress.IPv4Address("198.18.3.0")), 25)],
                6: [(int(ipaddress.IPv6Address("2001:db8:100::")), 40)]}]


def _parse(texts: tuple[str, ...]) -> dict[int, list[aggregate.Block]]:
    blocks: dict[int, list[aggregate.Block]] = {}
    for text in texts:
        version, addr, plen = aggregate.parse_prefix(text)
        blocks.setdefault(version, []).append((addr, plen))
    return blocks


def _scratch(blocklist: bool, texts: tuple[str, ...], exempt: reaggregate.Exempt) -> reaggregate.ListState:
    return reaggregate.build(blocklist, texts, _parse(texts), exempt)


@st.composite
def edit_sequences(draw: st.DrawFn) -> list[tuple[str, ...]]:
    current = draw(st.lists(prefixes, min_size=1, max_size=40))
    out = [tuple(current)]
    for _ in range(draw(st.integers(1, 6))):
        for _ in range(draw(st.integers(1, 3))):
            if current and draw(st.booleans()):
                current.pop(draw(st.integers(0, len(current) - 1)))
            else:
                current.insert(draw(st.integers(0, len(current))), draw(prefixes))
        out.append(tuple(current))
    return out


# found by a longer random run: covering the upper half of a /32 flips the value inherited by the lower
# half, whose subtree has both candidates at two levels (nothing to read from its own old rules)
NESTED = ("2001:db8:2000::/35", "2001:db8:3800::/37", "2001:db8:6000::/35", "2001:db8:9000::/36",
          "2001:db8:d000::/36", "0.0.0.0/0")


@settings(max_examples=600, deadline=None)
@given(edit_sequences(), st.booleans(), st.sampled_from(EXEMPTS))
@example([NESTED, (*NESTED, "2001:db8:8000::/33")], False, {})
def test_update_equals_a_build_from_scratch(steps: list[tuple[str, ...]], blocklist: bool,
                                            exempt: reaggregate.Exempt) -> None:
    state = _scratch(blocklist, steps[0], exempt)
    for i, texts in enumerate(steps[1:], 1):
        want = _scratch(blocklist, texts, exempt)
        got = reaggregate.update(state, texts, exempt, max_share=1e9)
        if got is None:   # a family appeared or vanished: the caller builds from scratch
            assert want.families.keys() != state.families.keys(), i
            state = want
            continue
        assert got == want, i
        _check_delta(state, got)
        state = got


def _check_delta(old: reaggregate.ListState, new: reaggregate.ListState) -> None:
    """A patched family names the table it came from, the old rows it dropped and the rows it made: every
    other row of the new table is one of the old table's objects (what the compiler's patch relies on)."""
    for version, family in new.families.items():
        before = old.families[version]
        if family is before or family.delta is None:
            continue
        base, went, came = family.delta
        assert base is before.table
        kept = {id(r) for r in before.table} & {id(r) for r in family.table}
        assert sorted(r for r in before.table if id(r) not in kept) == sorted(went)
        assert sorted(r for r in family.table if id(r) not in kept) == sorted(came)


def test_big_list_with_one_prefix_less_is_patched() -> None:
    texts = tuple(_v6(i, 40) for i in range(0, 256, 3)) + tuple(_v4(i, 26) for i in range(0, 256, 3))
    state = _scratch(False, texts, EXEMPTS[1])
    smaller = texts[:5] + texts[6:]
    assert reaggregate.update(state, smaller, EXEMPTS[1]) == _scratch(False, smaller, EXEMPTS[1])


@pytest.mark.parametrize("blocklist", [True, False])
def test_merge_and_split_of_siblings(blocklist: bool) -> None:
    """Adding the sibling of a /24 makes one /23 aggregate; removing it splits it again."""
    one = ("198.18.0.0/24", "198.18.4.0/24")
    two = (*one, "198.18.1.0/24")
    state = _scratch(blocklist, one, {})
    merged = reaggregate.update(state, two, {})
    assert merged == _scratch(blocklist, two, {})
    assert merged is not None and (int(ipaddress.IPv4Address("198.18.0.0")), 23) in merged.families[4].cover
    assert reaggregate.update(merged, one, {}) == state


def test_unparsable_or_large_changes_fall_back() -> None:
    state = _scratch(True, tuple(_v4(i, 26) for i in range(64)), {})
    assert reaggregate.update(state, ("198.18.1.1/24",), {}) is None
    assert reaggregate.update(state, tuple(_v4(i, 26) for i in range(64, 200)), {}) is None
