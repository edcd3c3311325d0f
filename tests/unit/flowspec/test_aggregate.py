"""The integer prefix helpers agree with the standard library, and ORTC beats or equals the cover."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.flowspec import aggregate

v4 = st.builds(lambda a, p: ipaddress.IPv4Network((a, p), strict=False), st.integers(0, 2**32 - 1),
               st.integers(0, 32))
v6 = st.builds(lambda a, p: ipaddress.IPv6Network((a, p), strict=False), st.integers(0, 2**128 - 1),
               st.integers(0, 128))


@settings(max_examples=300)
@given(st.one_of(v4, v6))
def test_parse_and_format_match_ipaddress(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
    version, addr, plen = aggregate.parse_prefix(str(net))
    assert (version, addr, plen) == (net.version, int(net.network_address), net.prefixlen)
    assert aggregate.format_prefix(version, addr, plen) == str(net)


@pytest.mark.parametrize("bad", ["198.18.1.1/24", "198.18.1.0", "198.18.1/24", "198.18.1.256/32",
                                 "198.18.1.0/33", "2001:db8::1/32", "nonsense/8"])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match=r"198|2001|nonsense"):
        aggregate.parse_prefix(bad)


@settings(max_examples=300)
@given(st.one_of(st.lists(v4, max_size=30), st.lists(v6, max_size=30)))
def test_cover_blocks_equals_collapse_addresses(nets: list[ipaddress.IPv4Network]) -> None:
    if not nets:
        return
    width = nets[0].max_prefixlen
    got = aggregate.cover_blocks([(int(n.network_address), n.prefixlen) for n in nets], width)
    want = [(int(n.network_address), n.prefixlen) for n in ipaddress.collapse_addresses(nets)]
    assert got == want


def test_minimal_table_uses_exceptions() -> None:
    blocks = [(int(ipaddress.IPv4Address(f"198.18.{i}.0")), 24) for i in range(256) if i != 9]
    cover = aggregate.cover_blocks(blocks, 32)
    table = aggregate.minimal_table(cover, 32, aggregate.OUT)
    assert len(cover) == 8
    assert sorted(table) == sorted([(int(ipaddress.IPv4Address("198.18.0.0")), 16, aggregate.IN),
                                    (int(ipaddress.IPv4Address("198.18.9.0")), 24, aggregate.OUT)])


@settings(max_examples=300)
@given(st.lists(v4, min_size=1, max_size=10), st.lists(v4, max_size=3))
def test_subtract_equals_set_difference(nets: list[ipaddress.IPv4Network],
                                        holes: list[ipaddress.IPv4Network]) -> None:
    cover = aggregate.cover_blocks([(int(n.network_address), n.prefixlen) for n in nets], 32)
    got = aggregate.subtract(cover, [(int(h.network_address), h.prefixlen) for h in holes], 32)
    remaining: list[ipaddress.IPv4Network] = list(ipaddress.collapse_addresses(nets))
    for hole in holes:
        nxt: list[ipaddress.IPv4Network] = []
        for n in remaining:
            if n.subnet_of(hole):
                continue
            nxt.extend(n.address_exclude(hole) if hole.subnet_of(n) else [n])
        remaining = nxt
    want = [(int(n.network_address), n.prefixlen) for n in ipaddress.collapse_addresses(remaining)]
    assert got == want
