"""Group mapping formats and errors; the savd-enforcer CLI's offline commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.enforcer import groupmap
from appliance.enforcer.main import main

CORPUS = Path(__file__).parent / "corpus"


@pytest.mark.parametrize(
    "text",
    [
        '{"7": ["eth1", "eth2"], "9": "eth3"}',
        '{"groups": {"7": ["eth1", "eth2"], "9": ["eth3"]}}',
        '[{"interface": "eth1", "group_id": 7}, {"interface": "eth2", "group": 7},'
        ' {"interface": "eth3", "group_id": 9}]',
        "# comment\n7 eth1 eth2\n\n9 eth3  # trailing\n",
    ],
)
def test_every_format_gives_the_same_mapping(text: str) -> None:
    assert groupmap.parse_text(text, "g") == {7: ("eth1", "eth2"), 9: ("eth3",)}


@pytest.mark.parametrize(
    "text, where",
    [
        ("7 eth1\nx eth2\n", "g:2"),
        ("7\n", "g:1"),
        ('{"7": ["bad name with spaces"]}', "g['7']"),
        ('[{"group_id": 7}]', "g[0]"),
        ('{"99999": ["eth1"]}', "g['99999']"),
        ("{not json", "g"),
    ],
)
def test_errors_name_the_file_and_line_or_entry(text: str, where: str) -> None:
    with pytest.raises(groupmap.GroupMapError) as info:
        groupmap.parse_text(text, "g")
    assert info.value.where == where


def test_node_file_redirects_are_read_checked_and_named_in_errors(tmp_path: Path) -> None:
    node = tmp_path / "r1.json"
    redirects = {"65000:4711": "2001:DB8:80::2", "198.18.0.1:9": "198.18.80.2"}
    node.write_text(json.dumps({"groups": [{"interface": "eth2", "group_id": 7}], "redirects": redirects}))
    assert groupmap.read_node_file(node) == (
        {7: ("eth2",)}, {"198.18.0.1:9": "198.18.80.2", "65000:4711": "2001:db8:80::2"})
    assert groupmap.parse_redirects('[{"interface": "eth1", "group_id": 7}]') == {}     # no node file form
    for redirects, what in (({"65000": "2001:db8::1"}, "ADMIN:NN"), ({"65000:1": "nope"}, "not an IP"),
                            (["65000:1"], "route target -> address")):
        node.write_text(json.dumps({"groups": [], "redirects": redirects}))
        with pytest.raises(groupmap.GroupMapError, match=what) as err:
            groupmap.read_node_file(node)
        assert str(node) in str(err.value) and "redirects" in str(err.value)


def test_flags_merge_with_files() -> None:
    merged = groupmap.merge(groupmap.parse_flag("7=eth1,eth2"), groupmap.parse_text("7 eth9", "f"))
    assert merged == {7: ("eth1", "eth2", "eth9")}
    with pytest.raises(groupmap.GroupMapError):
        groupmap.parse_flag("7")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(groupmap.GroupMapError, match="cannot read"):
        groupmap.read_file(tmp_path / "absent.json")


def test_cli_plan_prints_nft_text_and_states(capsys: pytest.CaptureFixture[str]) -> None:
    updates = str(CORPUS / "frr-8.4.4-via-exabgp-5.0.15.jsonl")
    assert main(["plan", "--updates", updates, "--group", "7=eth1", "--group", "8=eth2"]) == 0
    assert capsys.readouterr().out == (CORPUS / "frr-8.4.4-via-exabgp-5.0.15.nft").read_text()
    assert main(["plan", "--updates", updates, "--status"]) == 0
    states = {s["source"]: s["state"] for s in json.loads(capsys.readouterr().out)}
    assert states["198.18.77.0/24"] == "unmapped" and states["198.18.6.0/24"] == "installed"


def test_cli_plan_reports_bad_lines_and_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "nonsense"}\nnot json\n')
    assert main(["plan", "--updates", str(bad)]) == 0
    err = capsys.readouterr().err
    assert f"{bad}:1:" in err and f"{bad}:2: invalid JSON" in err
    assert main(["plan", "--updates", str(tmp_path / "absent")]) == 2


def test_cli_frr_config_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frr-config", "--asn", "65000"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "neighbor 198.18.254.2 remote-as internal" in lines
    assert lines.count("neighbor 198.18.254.2 route-reflector-client") == 2
    assert lines[0] == "configure terminal" and lines[-1] == "end"
