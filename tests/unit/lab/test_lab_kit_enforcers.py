"""The lab kit's enforcer command line and config checks, and `savd rpki serve`'s file check."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from appliance.config import load_config
from appliance.lab.errors import LabError
from appliance.lab.kit.enforcers import enforcer_argv, kit_paths, read_pids, routers_of
from appliance.lab.kit.labels import read_plan
from appliance.lab.kit.render import KitOptions, write_kit
from appliance.lab.runner import Lab
from appliance.lab.topology import load_topology
from rpki.serve import check_file

REPO = Path(__file__).resolve().parents[3]
SAV_BASIC = REPO / "containerlab" / "sav-basic" / "sav-basic.clab.yml"


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kit")
    write_kit(read_plan(load_topology(SAV_BASIC)), out, KitOptions(prefix="svkit"))
    return out


def test_enforcer_argv_names_node_vtysh_groups_and_workdir(kit: Path) -> None:
    lab = Lab(load_topology(SAV_BASIC), prefix="svkit")
    paths = kit_paths(Path("/d"), Path("/w"), "r2")
    argv = enforcer_argv(lab, "r2", 65000, paths, python="python3")
    assert argv[:4] == ["ip", "netns", "exec", "svkit-r2"]
    assert argv[4:7] == ["python3", "-m", "appliance.enforcer.main"]
    opts = dict(itertools.pairwise(argv))
    assert opts["--node"] == "r2" and opts["--asn"] == "65000"
    assert opts["--vtysh"] == "vtysh --vty_socket /var/run/frr/svkit-r2"
    assert opts["--groups-file"] == "/d/enforcer-groups/r2.json" and opts["--workdir"] == "/w/r2"
    assert "--configure-frr" in argv


def test_routers_come_from_the_config_and_must_match_the_lab_prefix(kit: Path) -> None:
    config = load_config(kit / "savd.toml")
    assert routers_of(config, Lab(load_topology(SAV_BASIC), prefix="svkit")) == ["r1", "r2", "r3", "r4"]
    with pytest.raises(LabError, match=r"r1 has netns 'svkit-r1' but the lab runs it in 'other-r1'") as err:
        routers_of(config, Lab(load_topology(SAV_BASIC), prefix="other"))
    assert err.value.node == "r1"
    with pytest.raises(LabError, match=r"no \[\[enforcer\]\] for router h1"):
        routers_of(config, Lab(load_topology(SAV_BASIC), prefix="svkit"), ["h1"])


def test_no_pids_file_means_nothing_to_stop(tmp_path: Path) -> None:
    assert read_pids(tmp_path) == {}
    (tmp_path / "enforcers.json").write_text("not json")
    assert read_pids(tmp_path) == {}


def test_rpki_serve_checks_the_file(kit: Path, tmp_path: Path) -> None:
    assert check_file(kit / "rpki.json") == (10, 0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"vrps": []}))
    with pytest.raises(ValueError, match='no "roas" list'):
        check_file(bad)
    bad.write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        check_file(bad)


def test_sav_basic_traffic_file_holds_the_demo_classes() -> None:
    from appliance.demo import demo_flows
    from appliance.lab.kit.flows import load_flows

    lab = Lab(load_topology(SAV_BASIC), prefix="svkit")
    assert load_flows(SAV_BASIC.parent / "traffic.yaml", lab) == demo_flows()


@pytest.mark.parametrize(("body", "words"), [
    ("classes: []", "non-empty `classes:`"),
    ("classes: [{from: h1, source: 198.18.1.10, to: h2, dst: 198.18.3.10, kind: bad}]", "classes[0].kind"),
    ("classes: [{from: h1, source: 198.18.1.10, to: h2, dst: '2001:db8::1', kind: legit}]", "IP versions"),
    ("classes: [{from: hx, source: 198.18.1.10, to: h2, dst: 198.18.3.10, kind: legit}]", "classes[0].from"),
    ("count: 0\nclasses: [{from: h1, source: 198.18.1.10, to: h2, dst: 198.18.3.10, kind: legit}]", "count"),
])
def test_bad_traffic_files_name_the_field(tmp_path: Path, body: str, words: str) -> None:
    from appliance.lab.kit.flows import TrafficFileError, load_flows

    path = tmp_path / "t.yaml"
    path.write_text(body)
    with pytest.raises(TrafficFileError) as err:
        load_flows(path, Lab(load_topology(SAV_BASIC), prefix="svkit"))
    assert words in str(err.value)
