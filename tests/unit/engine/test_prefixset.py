"""PrefixSet: mixed-family radix cover queries, member algebra and CIDR arithmetic."""

from __future__ import annotations

from appliance.engine.prefixset import PrefixSet, minimal_cover, subtract_space


def test_mixed_families_do_not_alias() -> None:
    s = PrefixSet(["2000::/8", "198.18.0.0/15"])
    assert not s.covers("32.0.0.1")  # py-radix keeps v4 and v6 apart (pytricia would not)
    assert s.covers("198.18.7.0/24")
    assert s.covers("2001:db8::1")


def test_covering_and_covered_order() -> None:
    s = PrefixSet(["198.18.0.0/15", "198.18.0.0/16", "198.18.1.0/24", "2001:db8::/32"])
    assert s.covering("198.18.1.5") == ("198.18.1.0/24", "198.18.0.0/16", "198.18.0.0/15")
    assert s.covered("198.18.0.0/16") == ("198.18.0.0/16", "198.18.1.0/24")
    assert s.covered("198.19.0.0/16") == ()
    assert s.overlaps("198.18.1.128/25")
    assert not s.overlaps("198.20.0.0/16")


def test_member_algebra() -> None:
    a = PrefixSet(["198.18.0.0/24", "198.18.1.0/24"])
    b = PrefixSet(["198.18.1.0/24", "2001:db8::/48"])
    assert a.union(b).sorted() == ("198.18.0.0/24", "198.18.1.0/24", "2001:db8::/48")
    assert a.difference(b).sorted() == ("198.18.0.0/24",)
    assert a.intersection(b).sorted() == ("198.18.1.0/24",)
    assert "198.18.0.0/24" in a and len(a) == 2
    assert a == PrefixSet(["198.18.1.0/24", "198.18.0.0/24"])


def test_subtract_space_carves_holes() -> None:
    got = subtract_space(["198.18.0.0/22"], ["198.18.1.0/24"])
    assert got == ("198.18.0.0/24", "198.18.2.0/23")
    assert subtract_space(["198.18.0.0/24"], []) == ("198.18.0.0/24",)
    assert subtract_space(["198.18.0.0/24"], ["198.18.0.0/16"]) == ()


def test_minimal_cover_merges_siblings() -> None:
    got = minimal_cover(
        ["198.18.0.0/24", "198.18.1.0/24", "198.18.1.0/25", "2001:db8::/33", "2001:db8:8000::/33"]
    )
    assert got == ("198.18.0.0/23", "2001:db8::/32")
