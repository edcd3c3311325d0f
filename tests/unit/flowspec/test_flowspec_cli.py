"""`savd flowspec compile`: text, ExaBGP and JSON output from a SavRuleSet file; bad files named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.model import Action, InterfaceRules, ListKind, Mode, SavRuleSet

RULES = SavRuleSet.of([
    InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24",)),
    InterfaceRules("r1", "eth2", ListKind.BLOCK, ("198.18.1.0/24",), Action(Mode.MONITOR)),
    InterfaceRules("r2", "eth1", ListKind.BLOCK, ("2001:db8::/32",)),
])


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    p = tmp_path / "rules.json"
    p.write_text(RULES.to_json())
    return p


def test_json_output(rules_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flowspec", "compile", str(rules_file), "--format", "json"]) == 0
    view = json.loads(capsys.readouterr().out)
    r1, r2 = view["routers"]
    assert (r1["router"], r1["emitted"], r1["exact_cover"]) == ("r1", 4, 4)
    eth2 = next(g["group_id"] for g in r1["groups"] if g["interface"] == "eth2")
    assert {(x["source"], x["action"], x["packet_length_min"]) for x in r1["rules"]} == {
        ("198.18.1.0/24", "accept", None), ("198.18.1.0/24", "sample", 0), ("0.0.0.0/0", "discard", None),
        ("0.0.0.0/32", "accept", None)}
    assert [x["groups"] for x in r1["rules"] if x["action"] == "sample"] == [[eth2]]
    assert [(x["source"], x["action"]) for x in r2["rules"]] == [("2001:db8::/32", "discard")]


def test_exabgp_output_for_one_router(rules_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flowspec", "compile", str(rules_file), "--router", "r2", "--format", "exabgp",
                 "--group-asn", "65000"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# r2: 1 rules (exact cover 1); groups eth1=")
    assert out[1].startswith("announce flow route { match { source 2001:db8::/32; } "
                             "scope { interface-set [ transitive:input:65000:")


def test_refused_router_exit_code(rules_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flowspec", "compile", str(rules_file), "--max-rules", "3"]) == 3
    captured = capsys.readouterr()
    assert "# r1: REFUSED" in captured.out and "flowspec.too-many-rules" in captured.err


@pytest.mark.parametrize(("content", "message"), [
    ("{", "rules.json:1: not JSON"),
    ('{"rules": [{"router": "r1"}]}', "rules.json: not a SavRuleSet (KeyError"),
])
def test_bad_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                           message: str) -> None:
    p = tmp_path / "rules.json"
    p.write_text(content)
    assert main(["flowspec", "compile", str(p)]) == 1
    assert message in capsys.readouterr().err
