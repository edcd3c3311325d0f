"""ASPA AS_PATH verification against the rtrlib-derived vectors; where rtrlib and draft-28 disagree the
draft's answer (draft28_expected) is asserted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appliance.engine.aspa import (
    Authorization,
    PathVerdict,
    authorized,
    build_table,
    compress,
    table_from_mapping,
    verify_downstream,
    verify_upstream,
)
from appliance.model import Aspa

VECTORS = "aspa-verification/rtrlib-aspa-path-vectors.json"


def _load(shared_data: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared_data / VECTORS).read_text())
    return data


def _table(rows: list[dict[str, Any]]) -> dict[int, frozenset[int]]:
    return build_table(Aspa(r["customer"], tuple(r["providers"])) for r in rows)


def test_path_vectors_follow_draft28(shared_data: Path) -> None:
    data = _load(shared_data)
    shared = _table(data["shared_table"]["aspas"])
    checked = 0
    disagreements = 0
    for case in data["path_cases"]:
        table = shared if case.get("table") == "shared" else _table(case["aspas"])
        verify = verify_upstream if case["direction"] == "upstream" else verify_downstream
        want = case.get("draft28_expected", case["expected"])
        disagreements += "draft28_expected" in case
        got = verify(table, case["as_path"])
        assert got == PathVerdict(want), f"{case['id']}: {case['as_path']} got {got}, draft-28 says {want}"
        checked += 1
    assert checked == 73
    assert disagreements == 3


def test_hop_checks(shared_data: Path) -> None:
    data = _load(shared_data)
    shared = _table(data["shared_table"]["aspas"])
    for hop in data["hop_checks"]:
        assert authorized(shared, hop["customer"], hop["provider"]) == Authorization(hop["expected"])


def test_collapse(shared_data: Path) -> None:
    for case in _load(shared_data)["as_path_collapse"]:
        assert compress(case["input"]) == tuple(case["output"])


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ([], PathVerdict.INVALID),  # empty AS_PATH is Invalid (draft-28 5.4)
        ([65002, 65001], PathVerdict.VALID),  # 65001 -> 65002 attested
        ([65003, 65001], PathVerdict.INVALID),  # 65001 attests only 65002: route leak
        ([65002, 65009], PathVerdict.UNKNOWN),  # 65009 has no ASPA
        ([65002, 65002, 65001], PathVerdict.VALID),  # prepending is compressed
    ],
)
def test_upstream_small_table(path: list[int], want: PathVerdict) -> None:
    table = build_table([Aspa(65001, (65002,))])
    assert verify_upstream(table, path) == want


def test_as0_aspa_means_no_provider() -> None:
    table = build_table([Aspa(65001, (0,))])
    assert table[65001] == frozenset()
    assert authorized(table, 65001, 65002) is Authorization.NOT_PROVIDER_PLUS
    assert verify_upstream(table, [65002, 65001]) is PathVerdict.INVALID


def test_neighbor_mismatch_is_invalid() -> None:
    table = build_table([Aspa(65001, (65002,))])
    assert verify_upstream(table, [65002, 65001], neighbor_as=65003) is PathVerdict.INVALID
    assert verify_upstream(table, [65002, 65001], neighbor_as=65003, rs_client=True) is PathVerdict.VALID
    assert verify_downstream(table, [65002, 65001], neighbor_as=65002) is PathVerdict.VALID


def test_table_from_mapping_matches_build_table() -> None:
    rows = {65001: (65002, 0), 65003: (0,)}
    assert table_from_mapping(rows) == build_table(Aspa(c, p) for c, p in rows.items())
    assert table_from_mapping(rows)[65003] == frozenset()
