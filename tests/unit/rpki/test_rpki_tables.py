"""VRP/ASPA tables: RFC 6811 origin validation, source-tagged deltas, snapshots, subscribers."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model import Aspa, Vrp
from rpki.keys import key_to_vrp, vrp_key
from rpki.tables import RovState, RpkiDelta, RpkiTables

ROAS = [
    Vrp("198.18.0.0/16", 24, 65001),
    Vrp("198.18.128.0/17", 17, 65002),
    Vrp("198.19.0.0/16", 16, 0),
    Vrp("2001:db8::/32", 48, 65003),
]


def keys(*vrps: Vrp) -> frozenset[bytes]:
    return frozenset(vrp_key(v) for v in vrps)


def table_with(*vrps: Vrp) -> RpkiTables:
    t = RpkiTables()
    t.set_source("test", keys(*vrps))
    return t


# RFC 6811 section 2 cases: (route prefix, origin) -> state.
@pytest.mark.parametrize(
    ("prefix", "origin", "state"),
    [
        ("198.18.5.0/24", 65001, RovState.VALID),  # covered, within maxLength, origin matches
        ("198.18.5.0/25", 65001, RovState.INVALID),  # longer than maxLength
        ("198.18.5.0/24", 65009, RovState.INVALID),  # wrong origin
        ("198.18.128.0/17", 65002, RovState.VALID),  # matched by the /17 though /16 covers too
        ("198.18.128.0/17", 65001, RovState.VALID),  # /16-24 AS65001 also matches
        ("198.18.200.0/24", 65002, RovState.INVALID),  # /17-17 too short; /16-24 has other origin
        ("198.19.1.0/24", 0, RovState.INVALID),  # AS0 ROA never matches, even origin 0
        ("198.19.1.0/24", 65001, RovState.INVALID),
        ("198.20.0.0/24", 65001, RovState.NOT_FOUND),
        ("198.16.0.0/14", 65001, RovState.NOT_FOUND),  # less specific than every VRP: not covered
        ("2001:db8:1::/48", 65003, RovState.VALID),
        ("2001:db8:1::/49", 65003, RovState.INVALID),
        ("2001:db9::/32", 65003, RovState.NOT_FOUND),
    ],
)
def test_origin_validation_rfc6811(prefix: str, origin: int, state: RovState) -> None:
    result = table_with(*ROAS).validate(prefix, origin)
    assert result.state is state
    if state is RovState.VALID:
        assert all(v.asn == origin for v in result.reasons)
    if state is RovState.INVALID:
        assert result.reasons and all(
            ipaddress.ip_network(prefix).subnet_of(ipaddress.ip_network(v.prefix))  # type: ignore[arg-type]
            for v in result.reasons
        )


def reference_rov(vrps: list[Vrp], prefix: str, origin: int) -> RovState:
    net = ipaddress.ip_network(prefix)
    covering = [v for v in vrps if net.version == ipaddress.ip_network(v.prefix).version
                and net.subnet_of(ipaddress.ip_network(v.prefix))]  # type: ignore[arg-type]
    if any(v.asn == origin and v.asn != 0 and net.prefixlen <= v.max_length for v in covering):
        return RovState.VALID
    return RovState.INVALID if covering else RovState.NOT_FOUND


@st.composite
def vrp_st(draw: st.DrawFn) -> Vrp:
    plen = draw(st.integers(8, 24))
    addr = draw(st.integers(0, 2**32 - 1)) >> (32 - plen) << (32 - plen)
    net = ipaddress.IPv4Network((addr, plen))
    return Vrp(str(net), draw(st.integers(plen, 26)), draw(st.sampled_from([0, 65001, 65002])))


@settings(max_examples=60, deadline=None)
@given(st.lists(vrp_st(), max_size=30), st.lists(vrp_st(), min_size=1, max_size=10),
       st.sampled_from([0, 65001, 65002]))
def test_origin_validation_matches_brute_force(vrps: list[Vrp], routes: list[Vrp], origin: int) -> None:
    t = table_with(*vrps)
    for r in routes:
        assert t.validate(r.prefix, origin).state is reference_rov(vrps, r.prefix, origin)
    # the index follows deltas: drop half the VRPs and re-check
    kept = vrps[::2]
    t.set_source("test", keys(*kept))
    for r in routes:
        assert t.validate(r.prefix, origin).state is reference_rov(kept, r.prefix, origin)


def test_sources_union_and_deltas_name_only_real_changes() -> None:
    t = RpkiTables()
    seen: list[RpkiDelta] = []
    unsubscribe = t.subscribe(seen.append)
    a, b, c = ROAS[:3]
    t.set_source("rtr", keys(a, b), {65001: (65010,)})
    t.set_source("file:x", keys(b, c), {65001: (65020,), 65002: (0,)})
    assert seen[-1].announced() == (c,) and seen[-1].withdrawn() == ()
    assert t.providers(65001) == (65010, 65020) and t.providers(65002) == (0,)
    t.remove_source("rtr")
    assert seen[-1].withdrawn() == (a,)  # b is still attested by the file
    assert seen[-1].aspas_set == (Aspa(65001, (65020,)),)
    assert t.snapshot().vrps == (b, c)
    version = t.version
    t.set_source("file:x", keys(b, c), {65001: (65020,), 65002: (0,)})
    assert t.version == version and len(seen) == 3  # unchanged data: no version, no callback
    unsubscribe()
    t.remove_source("file:x")
    assert len(seen) == 3 and t.snapshot().vrps == () and t.snapshot().aspas == ()


def test_snapshot_is_sorted_and_cached_per_version() -> None:
    t = table_with(*reversed(ROAS))
    snap = t.snapshot()
    assert snap.vrps == (ROAS[0], ROAS[1], ROAS[2], ROAS[3]) and t.snapshot() is snap
    t.set_source("other", keys(Vrp("198.18.0.0/15", 15, 65001)))
    assert t.snapshot() is not snap and t.snapshot().version == snap.version + 1


def test_failing_subscriber_does_not_stop_others() -> None:
    t = RpkiTables()
    got: list[int] = []

    def broken(delta: RpkiDelta) -> None:
        raise RuntimeError("boom")

    t.subscribe(broken)
    t.subscribe(lambda d: got.append(d.version))
    t.set_source("s", keys(ROAS[0]))
    assert got == [1]


def test_key_roundtrip_masks_host_bits() -> None:
    key = bytes((23, 26, 0)) + bytes.fromhex("c000020a") + (65551).to_bytes(4, "big")
    assert key_to_vrp(key) == Vrp("192.0.2.0/23", 26, 65551)
    assert key_to_vrp(vrp_key(ROAS[3])) == ROAS[3]


@st.composite
def dense_vrp_st(draw: st.DrawFn) -> Vrp:
    """VRPs in 198.18.0.0/15 with few addresses: shared prefixes (MOAS, maxLength variants) are common."""
    plen = draw(st.integers(15, 18))
    addr = (0xC612 << 16 | draw(st.integers(0, 3)) << 14) >> (32 - plen) << (32 - plen)
    net = ipaddress.IPv4Network((addr, plen))
    return Vrp(str(net), draw(st.integers(plen, 19)), draw(st.sampled_from([0, 65001, 65002])))


@settings(max_examples=100, deadline=None)
@given(st.lists(dense_vrp_st(), max_size=20), st.lists(dense_vrp_st(), max_size=20),
       st.lists(dense_vrp_st(), min_size=1, max_size=8), st.sampled_from([0, 65001, 65002]))
def test_bulk_built_index_with_shared_prefixes_and_two_sources(
    a: list[Vrp], b: list[Vrp], routes: list[Vrp], origin: int
) -> None:
    """The index is built in bulk per prefix length (issue 13); prefixes held by several keys or sources
    give the same state and the same deciding VRPs as a brute-force search."""
    t = RpkiTables()
    t.set_source("a", keys(*a))
    t.set_source("b", keys(*b))
    union = list(dict.fromkeys([*a, *b]))
    for r in routes:
        result = t.validate(r.prefix, origin)
        assert result.state is reference_rov(union, r.prefix, origin)
        net = ipaddress.ip_network(r.prefix)
        covering = {v for v in union if net.subnet_of(ipaddress.ip_network(v.prefix))}  # type: ignore[arg-type]
        if result.state is RovState.INVALID:
            assert set(result.reasons) == covering
        if result.state is RovState.VALID:
            assert set(result.reasons) == {
                v for v in covering if v.asn == origin and net.prefixlen <= v.max_length
            }
            assert len(result.reasons) == len(set(result.reasons))  # a key in two sources counts once


def test_a_key_with_host_bits_is_still_indexed_by_its_network() -> None:
    """No source produces such keys (make_key masks, the RTR ingest refuses them); the index's bulk build
    checks anyway and masks them one by one, as before issue 13."""
    good = vrp_key(Vrp("198.18.0.0/16", 24, 65001))
    bad = bytes((16, 24, 0, 198, 19, 0, 1)) + (65002).to_bytes(4, "big")  # 198.19.0.1/16
    t = RpkiTables()
    t.set_source("raw", frozenset({good, bad}))
    assert t.validate("198.19.5.0/24", 65002).state is RovState.VALID
    assert t.validate("198.18.5.0/24", 65001).state is RovState.VALID
    assert t.validate("198.18.5.0/24", 65002).state is RovState.INVALID
