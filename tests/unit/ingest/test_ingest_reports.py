"""Source-prefix reports: tag mapping, YAML file, store, precedence and conflict events, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.cli import main
from appliance.model import Capability, PrefixFlags, PrefixReport, Role, Router
from appliance.sources.bgpls.decode import LsAnnounce, LsLink, LsNode, LsPrefix, NodeId
from appliance.sources.bgpls.graph import Topology
from appliance.sources.reports.errors import ReportError
from appliance.sources.reports.merge import apply_roles, resolve
from appliance.sources.reports.records import RouterReport
from appliance.sources.reports.store import ReportStore
from appliance.sources.reports.tags import (
    decode_extended_tag,
    decode_tag,
    encode_extended_tag,
    encode_tag,
    reports_from_topology,
)
from appliance.sources.reports.yamlfile import load_report_file, parse_report_doc

flags_st = st.builds(PrefixFlags, st.booleans(), st.booleans(), st.booleans())


@given(st.integers(1, (1 << 24) - 1), flags_st)
def test_route_tag_round_trip(subnet: int, flags: PrefixFlags) -> None:
    tag = decode_tag(encode_tag(subnet, flags))
    assert tag is not None and (tag.subnet, tag.flags) == (str(subnet), flags)


@given(st.integers(1, (1 << 32) - 1), flags_st)
def test_extended_tag_round_trip(subnet: int, flags: PrefixFlags) -> None:
    tag = decode_extended_tag(encode_extended_tag(subnet, flags))
    assert tag is not None and (tag.subnet, tag.flags) == (str(subnet), flags)


def test_documented_tag_values() -> None:
    assert encode_tag(1) == 0xA0000001
    assert decode_tag(0xA8000007) == decode_tag(encode_tag(7, PrefixFlags(anycast=True)))
    assert decode_tag(0xA2000010).flags == PrefixFlags(multihomed=True)  # type: ignore[union-attr]
    for not_sav in (0, 100, 0xA0000000, 0xB0000001):
        assert decode_tag(not_sav) is None
    assert decode_extended_tag(0x5341_01_00_0000_0009).flags.anycast  # type: ignore[union-attr]
    assert decode_extended_tag(0x1234_0000_0000_0009) is None


def test_reports_from_bgpls_tags_resolve_interface() -> None:
    r1 = NodeId(3, 0, 65000, "198.18.255.1", "0.0.0.0")
    r2 = NodeId(3, 0, 65000, "198.18.255.2", "0.0.0.0")
    t = Topology()
    t.apply_all(
        LsAnnounce("a", i)
        for i in (
            LsNode(r1, "r1"),
            LsLink(r1, r2, ("198.18.20.1",), ("198.18.20.2",), name="eth3"),
            LsPrefix(r1, "198.18.20.0/24", route_tags=(encode_tag(20, PrefixFlags(multihomed=True)),)),
            LsPrefix(r1, "198.18.10.0/24", route_tags=(100, encode_tag(10))),
            LsPrefix(r1, "198.18.11.0/24", route_tags=(100,)),
        )
    )
    assert reports_from_topology(t) == [
        PrefixReport("r1", "", "198.18.10.0/24", "10", PrefixFlags(), "bgp-ls"),
        PrefixReport("r1", "eth3", "198.18.20.0/24", "20", PrefixFlags(multihomed=True), "bgp-ls"),
    ]


YAML_DOC = {
    "routers": {"r1": {"role": "access", "capability": "legacy"}},
    "subnets": [
        {
            "id": 10,
            "flags": ["multihomed"],
            "prefixes": ["198.18.10.0/24", "2001:db8:10::/48"],
            "attachments": [{"router": "r1", "interface": "eth2"}, {"router": "r2", "interface": "eth3"}],
        }
    ],
    "prefixes": [
        {
            "router": "r3",
            "interface": "eth2",
            "prefix": "198.18.30.0/24",
            "subnet": "30",
            "flags": ["anycast"],
        }
    ],
}


def test_yaml_document_expands_attachments() -> None:
    prefixes, routers = parse_report_doc(YAML_DOC, "f.yaml")
    assert routers == [RouterReport("r1", Role.ACCESS, Capability.LEGACY, "file")]
    assert len(prefixes) == 5
    assert (
        PrefixReport("r2", "eth3", "2001:db8:10::/48", "10", PrefixFlags(multihomed=True), "file") in prefixes
    )
    assert prefixes[-1] == PrefixReport(
        "r3", "eth2", "198.18.30.0/24", "30", PrefixFlags(anycast=True), "file"
    )


def test_toml_file_same_schema(tmp_path: Path) -> None:
    f = tmp_path / "reports.toml"
    f.write_text(
        '[routers.r1]\nrole = "border"\n[[subnets]]\nid = "7"\nprefixes = ["198.18.7.0/24"]\n'
        'attachments = [{router = "r1", interface = "eth1"}]\n'
    )
    prefixes, routers = load_report_file(f)
    assert prefixes == [PrefixReport("r1", "eth1", "198.18.7.0/24", "7", PrefixFlags(), "file")]
    assert routers == [RouterReport("r1", Role.BORDER, None, "file")]
    f.write_text("[[subnets]\n")
    with pytest.raises(ReportError, match="not valid TOML"):
        load_report_file(f)


def test_yaml_errors_name_file_and_field_all_at_once() -> None:
    bad = {
        "routers": {"r1": {"role": "boss"}},
        "subnets": [{"prefixes": ["198.18.10.1/24"], "flags": ["odd"], "attachments": [{"interface": "x"}]}],
        "extra": 1,
    }
    with pytest.raises(ReportError) as exc:
        parse_report_doc(bad, "f.yaml")
    text = str(exc.value)
    for part in (
        "f.yaml: extra: unknown section",
        "f.yaml: routers.r1.role: 'boss'",
        "subnets[0].id: required",
        "subnets[0].prefixes[0]: 198.18.10.1/24 has host bits set",
        "subnets[0].flags: unknown flag",
        "subnets[0].attachments[0].router: required",
    ):
        assert part in text, part


def test_precedence_api_over_file_over_bgpls_with_override_note() -> None:
    res = resolve(
        [
            PrefixReport("r1", "eth2", "198.18.10.0/24", "10", source="bgp-ls"),
            PrefixReport("r1", "eth2", "198.18.10.0/24", "11", source="file"),
            PrefixReport("r1", "eth2", "198.18.10.0/24", "12", source="api"),
        ],
        now=5.0,
    )
    assert [(r.subnet, r.source) for r in res.prefixes] == [("12", "api")]
    assert [e.type for e in res.events] == ["report-overridden", "report-overridden"]
    assert res.conflicts() == () and res.events[0].time == 5.0


def test_same_prefix_two_subnets_is_a_conflict_naming_both() -> None:
    res = resolve(
        [
            PrefixReport("r1", "eth2", "198.18.10.0/24", "10", source="file"),
            PrefixReport("r2", "eth1", "198.18.10.0/24", "20", source="api"),
        ]
    )
    (ev,) = res.conflicts()
    assert ev.type == "report-conflict" and ev.alarm
    assert "subnet 10 (r1:eth2, file)" in ev.message and "subnet 20 (r2:eth1, api)" in ev.message
    assert (ev.fields["subnet_a"], ev.fields["subnet_b"]) == ("10", "20")
    assert len(res.prefixes) == 2  # both kept: fail open


def test_nested_prefix_of_other_subnet_is_an_overlap_conflict() -> None:
    res = resolve(
        [
            PrefixReport("r1", "eth2", "198.18.0.0/16", "1"),
            PrefixReport("r2", "eth1", "198.18.10.0/24", "2"),
            PrefixReport("r2", "eth1", "198.18.11.0/24", "1"),  # same subnet: fine
            PrefixReport("r3", "eth1", "2001:db8::/32", "1"),
        ]
    )
    (ev,) = res.conflicts()
    assert ev.type == "report-overlap" and ev.fields["other_prefix"] == "198.18.10.0/24"


def test_anycast_and_same_subnet_multihoming_do_not_conflict() -> None:
    any_flags = PrefixFlags(anycast=True)
    res = resolve(
        [
            PrefixReport("r1", "eth2", "198.18.50.0/24", "1", any_flags),
            PrefixReport("r2", "eth2", "198.18.50.0/24", "2", any_flags),
            PrefixReport("r1", "eth3", "198.18.60.0/24", "3"),
            PrefixReport("r2", "eth4", "198.18.60.0/24", "3"),
        ]
    )
    assert res.conflicts() == ()


def test_router_roles_merge_by_precedence_and_apply() -> None:
    res = resolve(
        [],
        [
            RouterReport("r1", Role.BORDER, Capability.LEGACY, "file"),
            RouterReport("r1", Role.ACCESS, None, "api"),
        ],
    )
    assert res.routers["r1"] == RouterReport("r1", Role.ACCESS, Capability.LEGACY, "api")
    routers = apply_roles([Router("r1", "198.18.255.1"), Router("r2")], res.routers)
    assert [(r.role, r.capability) for r in routers] == [
        (Role.ACCESS, Capability.LEGACY),
        (Role.CORE, Capability.SAVNET),
    ]


def test_store_round_trip_and_damage(tmp_path: Path) -> None:
    with ReportStore(tmp_path).locked() as s:
        assert s.add(PrefixReport("r1", "eth2", "198.18.10.0/24", "10", PrefixFlags(special=True)))
        assert not s.add(PrefixReport("r1", "eth2", "198.18.10.0/24", "10", PrefixFlags(special=True)))
        s.set_router(RouterReport("r1", Role.BORDER))
    loaded = ReportStore.load(tmp_path)
    assert loaded.prefixes == [
        PrefixReport("r1", "eth2", "198.18.10.0/24", "10", PrefixFlags(special=True), "api")
    ]
    assert loaded.routers == [RouterReport("r1", Role.BORDER, None, "api")]
    (tmp_path / "reports.json").write_text("{not json")
    with pytest.raises(ReportError, match=r"reports\.json: damaged report store"):
        ReportStore.load(tmp_path)


def test_cli_add_list_conflict_del(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(tmp_path)
    assert (
        main(
            [
                "report",
                "add",
                "--data-dir",
                d,
                "--router",
                "r1",
                "--interface",
                "eth2",
                "--prefix",
                "198.18.10.0/24",
                "--subnet",
                "10",
                "--flag",
                "multihomed",
            ]
        )
        == 0
    )
    yaml_file = tmp_path / "r.yaml"
    yaml_file.write_text(
        "prefixes:\n  - {router: r2, interface: eth1, prefix: 198.18.10.0/24, subnet: '20'}\n"
    )
    capsys.readouterr()
    assert main(["report", "list", "--data-dir", d, "--file", str(yaml_file), "--json", "--check"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [p["source"] for p in doc["prefixes"]] == ["api", "file"]
    assert [e["type"] for e in doc["events"]] == ["report-conflict"]
    assert (
        main(
            [
                "report",
                "del",
                "--data-dir",
                d,
                "--router",
                "r1",
                "--interface",
                "eth2",
                "--prefix",
                "198.18.10.0/24",
            ]
        )
        == 0
    )
    assert main(["report", "list", "--data-dir", d, "--check"]) == 0
    assert main(["report", "add", "--data-dir", d, "--router", "r1", "--prefix", "198.18.10.1/24"]) == 2
    assert "host bits" in capsys.readouterr().err


def test_topology_show_offline_from_frr_table(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = shared_data / "bgp-ls" / "frr-topotest-bgp_link_state" / "rr" / "bgp_ls_nlri.json"
    assert (
        main(["report", "role", "--data-dir", str(tmp_path), "--router", "000000000001", "--role", "border"])
        == 0
    )
    capsys.readouterr()
    assert main(["topology", "show", "--frr-json", str(table), "--data-dir", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["routers"]) == 4 and len(doc["links"]) == 16 and len(doc["prefixes"]) == 25
    assert doc["routers"][0]["role"] == "border" and doc["routers"][1]["role"] == "core"
