"""FRR daemons-file parsing, daemon command lines, and the pure status/convergence views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.lab.errors import LabError
from appliance.lab.frr import daemon_argv, own_options, parse_daemons
from appliance.lab.status import bgp_neighbors, json_subset, ospf6_neighbors, ospf_neighbors

DEBIAN_STYLE = """
# comment
bgpd=yes
ospfd=no
ospf6d=yes
vtysh_enable=yes
zebra_options="  -A 127.0.0.1 -s 90000000"
bgpd_options="   -A 127.0.0.1 -M rpki"   # trailing comment
MAX_FDS=1024
"""


def test_daemons_file_enables_in_frr_start_order_with_options() -> None:
    parsed = parse_daemons(DEBIAN_STYLE)
    assert parsed.enabled == ("zebra", "bgpd", "ospf6d", "staticd")
    assert parsed.options["bgpd"] == ("-A", "127.0.0.1", "-M", "rpki")
    assert parsed.options["zebra"] == ("-A", "127.0.0.1", "-s", "90000000")


def test_zebra_and_staticd_cannot_be_disabled() -> None:
    assert parse_daemons("zebra=no\nstaticd=no\n").enabled == ("zebra", "staticd")


def test_bad_daemon_value_names_file_and_line() -> None:
    with pytest.raises(LabError, match=r"r1/daemons:2: bgpd must be yes or no, not 'maybe'"):
        parse_daemons("ospfd=yes\nbgpd=maybe\n", "r1/daemons")


def test_runner_owned_options_are_dropped() -> None:
    words = (
        "-d",
        "-A",
        "127.0.0.1",
        "-N",
        "x",
        "--log=file:/x",
        "-f",
        "/etc/frr/bgpd.conf",
        "-M",
        "rpki",
        "-i",
        "/p",
    )
    assert own_options(words) == ["-A", "127.0.0.1", "-M", "rpki"]


def test_daemon_argv_uses_pathspace_log_and_config() -> None:
    argv = daemon_argv(
        "bgpd", "sv12ab-r1", ("-d", "-A", "127.0.0.1"), Path("/run/l/bgpd.log"), Path("/run/l/e")
    )
    assert argv == [
        "/usr/lib/frr/bgpd",
        "-d",
        "-N",
        "sv12ab-r1",
        "-f",
        "/run/l/e",
        "--log",
        "file:/run/l/bgpd.log",
        "-A",
        "127.0.0.1",
    ]


SUBSET_CASES: list[tuple[str, Any, Any, bool]] = [
    ("equal scalars", 1, 1, True),
    ("different scalars", "Full", "Init", False),
    ("dict subset", {"a": 1}, {"a": 1, "b": 2}, True),
    ("missing key", {"c": 1}, {"a": 1}, False),
    ("null means absent", {"c": None}, {"a": 1}, True),
    ("null but present", {"a": None}, {"a": 1}, False),
    ("wildcard", {"a": "*"}, {"a": [1, 2]}, True),
    ("unordered list", [{"id": 2}, {"id": 1}], [{"id": 1, "x": 0}, {"id": 2}], True),
    ("list items are distinct", [{"id": 1}, {"id": 1}], [{"id": 1}], False),
    ("type mismatch", {"a": 1}, [1], False),
]


@pytest.mark.parametrize(
    ("expected", "actual", "result"), [c[1:] for c in SUBSET_CASES], ids=[c[0] for c in SUBSET_CASES]
)
def test_json_subset(expected: Any, actual: Any, result: bool) -> None:
    assert json_subset(expected, actual) is result


def test_neighbour_views_flatten_frr_json() -> None:
    ospf = {"neighbors": {"198.18.255.3": [{"nbrState": "Full/-", "ifaceName": "eth2:198.18.10.1"}]}}
    assert ospf_neighbors(ospf) == [{"neighbor": "198.18.255.3", "interface": "eth2", "state": "Full"}]
    ospf6 = {"neighbors": [{"neighborId": "198.18.255.3", "state": "Full", "interfaceName": "eth2"}]}
    assert ospf6_neighbors(ospf6) == [{"neighbor": "198.18.255.3", "interface": "eth2", "state": "Full"}]
    bgp = {"198.18.30.2": {"remoteAs": 65100, "bgpState": "Established"}, "totalPeers": 1}
    assert bgp_neighbors(bgp) == [{"neighbor": "198.18.30.2", "remote_as": "65100", "state": "Established"}]
    assert ospf_neighbors("garbage") == [] and bgp_neighbors([]) == []
