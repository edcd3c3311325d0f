"""The one name pattern, the file-name guard and the one prefix parser (issue 12, items 3 and 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.model import InterfaceRules, ListKind, SavRuleSet, canonical_prefix
from appliance.names import (
    UnsafeName,
    check_interface_name,
    check_router_name,
    safe_child,
    subnet_id_problem,
)
from appliance.speakers.sessions import write_groups


@pytest.mark.parametrize("name", ["r1", "core", "b2", "R-1.lab", "198.18.0.1", "2001:db8::1",
                                  "0000.0000.0001", "rtr_1", "a" * 64])
def test_router_names_of_labs_and_router_ids_are_valid(name: str) -> None:
    assert check_router_name(name) == name


@pytest.mark.parametrize("name", ["", "../../../X", "..", "r1/..", "a..b", ".hidden", "-r1", "r 1", "r1\n",
                                  "r1;drop", "r\0", "a" * 65, "r\udc80", "é"])
def test_router_names_that_could_leave_a_folder_or_confuse_a_log_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        check_router_name(name)


@pytest.mark.parametrize("value", [True, 1, 1.0, None, ["r1"], {"r": 1}])
def test_a_name_must_be_a_string_never_a_coerced_value(value: object) -> None:
    with pytest.raises(ValueError, match="must be a name string"):
        check_router_name(value)


@pytest.mark.parametrize("name", ["eth1", "lo", "r1-eth2", "eth0.100", "veth_a", "e" * 15])
def test_linux_interface_names_are_valid(name: str) -> None:
    assert check_interface_name(name) == name


@pytest.mark.parametrize("name", ["", "e" * 16, "ge-0/0/1", "eth0:1", "eth 1", "..", "../eth1"])
def test_interface_names_follow_ifnamsiz_without_separators(name: str) -> None:
    with pytest.raises(ValueError):
        check_interface_name(name)


def test_subnet_ids_are_strings_or_integers_not_floats_or_booleans() -> None:
    assert subnet_id_problem("lan-a") is None and subnet_id_problem(10) is None
    assert subnet_id_problem(1.0) and subnet_id_problem(True) and subnet_id_problem("")
    assert subnet_id_problem("x" * 129) and subnet_id_problem("a\nb")


def test_safe_child_refuses_names_that_leave_the_folder(tmp_path: Path) -> None:
    assert safe_child(tmp_path, "r1.json") == tmp_path / "r1.json"
    for bad in ("../X.json", "..", ".", "", "a/b.json", "a\0.json"):
        with pytest.raises(UnsafeName):
            safe_child(tmp_path, bad)
    (tmp_path / "planted.json").symlink_to(tmp_path.parent / "elsewhere.json")
    with pytest.raises(UnsafeName):
        safe_child(tmp_path, "planted.json")


def test_group_files_are_never_written_outside_their_folder(tmp_path: Path) -> None:
    """Before the fix, a router "../../../X" (accepted by POST /api/v1/reports) became X.json above it."""
    groups = tmp_path / "data" / "enforcer-groups"
    evil = "../../X"
    rules = SavRuleSet((InterfaceRules(evil, "eth1", ListKind.ALLOW, ("198.18.1.0/24",)),
                        InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24",))))
    write_groups(groups, rules)
    assert sorted(p.name for p in groups.iterdir()) == ["r1.json"]
    assert not (tmp_path / "X.json").exists()


@pytest.mark.parametrize("text, canonical", [
    ("198.18.1.0/24", "198.18.1.0/24"),
    ("2001:DB8:0::/32", "2001:db8::/32"),
    (" 198.18.1.0/24 ", "198.18.1.0/24"),
    ("0.0.0.0/0", "0.0.0.0/0"),
    ("64:ff9b::/96", "64:ff9b::/96"),
])
def test_canonical_prefix_accepts_address_slash_length(text: str, canonical: str) -> None:
    assert canonical_prefix(text) == canonical


@pytest.mark.parametrize("text", [
    "fe80::%eth0/64",              # scoped IPv6
    "fe80::1%2/128",
    "198.18.0.0/255.255.255.0",    # netmask form
    "198.18.0.0/0.0.0.255",        # hostmask form
    "::ffff:198.18.0.0/120",       # IPv4-mapped IPv6
    "::ffff:0:0/96",
    "198.18.1.1",                  # a bare address is not a prefix
    "198.18.1.0/024",
    "198.18.1.1/24",               # host bits
    "198.18.1.0/33",
])
def test_canonical_prefix_refuses_every_other_spelling(text: str) -> None:
    with pytest.raises(ValueError):
        canonical_prefix(text)


@pytest.mark.parametrize("value", [24, None, ["198.18.1.0/24"], True])
def test_canonical_prefix_refuses_non_strings(value: object) -> None:
    with pytest.raises(ValueError, match="must be a string"):
        canonical_prefix(value)
