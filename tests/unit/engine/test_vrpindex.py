"""The engine's VRP index (appliance/engine/vrpindex.py) answers what a naive covering search answers.

Random VRP sets in a small IPv4 and IPv6 space (so covering, equal and disjoint prefixes all occur), random
queries; the index, once built and once patched by a random delta, is compared with a scan of every VRP.
Also: RpkiView's ROV answers and ROA prefixes per ASN equal the RFC 6811 definition over the VRP list.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.engine.rib import Rov, RpkiView
from appliance.engine.vrpindex import VrpIndex
from appliance.model import Vrp

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def _net(version: int, value: int, length: int) -> Net:
    if version == 4:
        return ipaddress.IPv4Network((0xC6120000 | value, length), strict=False)
    return ipaddress.IPv6Network(((0x20010DB8 << 96) | (value << 80), length), strict=False)


@st.composite
def prefixes(draw: st.DrawFn) -> str:
    """Canonical prefixes in 198.18.0.0/16 (lengths 16-26) or 2001:db8::/32 (lengths 32-50)."""
    version = draw(st.sampled_from((4, 6)))
    value = draw(st.integers(0, 0xFFFF))
    length = draw(st.integers(16, 26) if version == 4 else st.integers(32, 50))
    return str(_net(version, value, length))


@st.composite
def vrps(draw: st.DrawFn) -> Vrp:
    prefix = draw(prefixes())
    length = int(prefix.rsplit("/", 1)[1])
    top = 32 if ":" not in prefix else 128
    max_length = draw(st.integers(length, min(top, length + 4)))
    return Vrp(prefix, max_length, draw(st.sampled_from((0, 64500, 64501))))


def naive_covering(vrp_list: list[Vrp], prefix: str) -> list[Vrp]:
    route = ipaddress.ip_network(prefix)
    out = []
    for v in vrp_list:
        net = ipaddress.ip_network(v.prefix)
        if net.version == route.version and route.subnet_of(net):  # type: ignore[arg-type]
            out.append(v)
    return out


def key(vs: list[Vrp]) -> list[tuple[str, int, int]]:
    return sorted((v.prefix, v.max_length, v.asn) for v in vs)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(vrps(), max_size=40, unique=True),
    st.lists(prefixes(), min_size=1, max_size=20),
    st.lists(vrps(), max_size=10, unique=True),
    st.data(),
)
def test_covering_equals_naive_search_before_and_after_a_patch(
    initial: list[Vrp], queries: list[str], added: list[Vrp], data: st.DataObject
) -> None:
    index = VrpIndex(initial)
    for q in queries:
        got = index.covering(q)
        assert key(got) == key(naive_covering(initial, q))
        lengths = [int(v.prefix.rsplit("/", 1)[1]) for v in got]
        assert lengths == sorted(lengths, reverse=True)  # most specific first
    removed = data.draw(st.lists(st.sampled_from(initial), unique=True)) if initial else []
    index.patch(added, removed)
    now = [v for v in initial if v not in removed] + [v for v in added if v not in initial or v in removed]
    now = list(dict.fromkeys(now))
    for q in [*queries, *(v.prefix for v in added), *(v.prefix for v in removed)]:
        assert key(index.covering(q)) == key(naive_covering(now, q))
        assert key(list(index.at(q))) == key([v for v in now if v.prefix == q])


def naive_rov(vrp_list: list[Vrp], prefix: str, origin: int) -> Rov:
    covering = naive_covering(vrp_list, prefix)
    if not covering:
        return Rov.NOT_FOUND
    length = ipaddress.ip_network(prefix).prefixlen
    if any(v.asn == origin and v.asn != 0 and length <= v.max_length for v in covering):
        return Rov.VALID
    return Rov.INVALID


@settings(max_examples=200, deadline=None)
@given(
    st.lists(vrps(), max_size=30, unique=True),
    st.lists(st.tuples(prefixes(), st.sampled_from((0, 64500, 64501, 64502))), min_size=1, max_size=15),
    st.lists(vrps(), max_size=8, unique=True),
)
def test_rpki_view_rov_and_roa_prefixes_follow_rfc6811_after_a_delta(
    initial: list[Vrp], queries: list[tuple[str, int]], added: list[Vrp]
) -> None:
    view = RpkiView.of(initial, ())
    for prefix, origin in queries:
        assert view.rov(prefix, origin) is naive_rov(initial, prefix, origin)
    assert view.roa_prefixes_by_asn == _by_asn(initial)
    removed = initial[::2]
    now = [v for v in initial if v not in removed] + [v for v in added if v not in initial]
    patched = view.with_vrp_delta(tuple(now), [v for v in added if v not in initial], removed)
    for prefix, origin in queries:
        assert patched.rov(prefix, origin) is naive_rov(now, prefix, origin)
        assert set(patched.authorized_origins(prefix)) == {
            v.asn for v in naive_covering(now, prefix)
            if v.asn and ipaddress.ip_network(prefix).prefixlen <= v.max_length
        }
    assert patched.roa_prefixes_by_asn == _by_asn(now)
    assert patched.roa_prefixes_by_asn == RpkiView.of(now, ()).roa_prefixes_by_asn


def _by_asn(vrp_list: list[Vrp]) -> dict[int, frozenset[str]]:
    acc: dict[int, set[str]] = {}
    for v in vrp_list:
        if v.asn:
            acc.setdefault(v.asn, set()).add(v.prefix)
    return {a: frozenset(p) for a, p in acc.items()}


def test_covering_probes_only_lengths_present_and_finds_the_default_route() -> None:
    index = VrpIndex([Vrp("0.0.0.0/0", 32, 64500), Vrp("198.18.0.0/15", 24, 64501), Vrp("::/0", 128, 64502)])
    assert key(index.covering("198.19.7.0/24")) == [("0.0.0.0/0", 32, 64500), ("198.18.0.0/15", 24, 64501)]
    assert key(index.covering("2001:db8::/32")) == [("::/0", 128, 64502)]
    assert index.covering("10.0.0.0/8") == [Vrp("0.0.0.0/0", 32, 64500)]
