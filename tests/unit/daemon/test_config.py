"""Configuration: typed values from TOML, and every problem reported with its key and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.cli import main
from appliance.config import ConfigError, Family, SpeakerType, load_config, parse_config
from appliance.config_reader import LineIndex
from appliance.engine.policy import Algorithm
from appliance.engine.steering import SteeringPolicy
from appliance.model import Action, Inspector, Mode, RedirectForm, Relationship, Role, SteeringFallback

REPO = Path(__file__).resolve().parents[3]

MINIMAL = """\
[appliance]
asn = 65000
router_id = "198.18.0.1"
"""


def parse(text: str, tmp_path: Path) -> object:
    return parse_config(text, tmp_path / "savd.toml")


def problems(text: str, tmp_path: Path) -> list[tuple[int, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, tmp_path / "savd.toml")
    return [(p.line, p.key, p.message) for p in info.value.problems]


def test_example_config_is_valid_and_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAVD_API_TOKEN", "s3cret-for-the-tests")
    config = load_config(REPO / "configs" / "example.toml")
    assert config.appliance.asn == 65000
    assert config.appliance.data_dir == REPO / "configs" / "data"
    assert (config.api.host, config.api.port, config.api.token) == ("127.0.0.1", 8180, "s3cret-for-the-tests")
    exa, gobgp = config.speakers
    assert exa.type is SpeakerType.EXABGP and exa.listen_host == "198.18.0.1" and exa.listen_port == 179
    assert exa.asn == 65000 and exa.router_id == "198.18.0.1"
    assert [p.router for p in exa.peers] == ["r1", "r2"]
    assert exa.peers[0].families == (Family.BGP_LS, Family.IPV4_FLOWSPEC, Family.IPV6_FLOWSPEC)
    assert gobgp.type is SpeakerType.GOBGP and gobgp.api == "127.0.0.1:50051"
    assert config.rpki.caches[0].port == 8282 and config.rpki.caches[0].name == "stayrtr"
    assert config.rpki.files[0].path == REPO / "configs" / "rpki" / "vrps.json"
    assert config.engine.routers[0].role is Role.BORDER
    assert config.engine.neighbors[0].relationship is Relationship.CUSTOMER
    assert config.flowspec.max_rules_per_router == 2000
    assert [e.router for e in config.enforcers] == ["r1", "r2"]


def test_token_is_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAVD_API_TOKEN", "s3cret-for-the-tests")
    config = load_config(REPO / "configs" / "example.toml")
    assert "s3cret-for-the-tests" not in repr(config)


def test_defaults_from_minimal_file(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, tmp_path / "savd.toml")
    assert config.speakers == () and config.enforcers == ()
    assert config.api.token == "" and not config.api.read_token_required
    assert config.engine.default_action == Action()
    assert config.appliance.data_dir == tmp_path / "data"
    assert config.reports.file is None


def test_every_error_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    text = """\
[appliance]
asn = 0
router_id = "not-an-ip"

[api]
listen = "127.0.0.1:99999"

[[speaker]]
name = "a"
type = "bird"

  [[speaker.peers]]
  address = "198.18.0.300"
  asn = 65001
  router = "r1"

  [[speaker.peers]]
  address = "198.18.0.300"
  asn = "65002"
  router = "r1"
  familes = ["bgp-ls"]

[[speaker]]
name = "a"
type = "gobgp"

[flowspec]
force = "yes"
"""
    found = problems(text, tmp_path)
    assert found == [
        (2, "appliance.asn", "must be between 1 and 4294967295, got 0"),
        (3, "appliance.router_id", "must be a dotted IPv4 router id, got 'not-an-ip'"),
        (6, "api.listen", "port must be 1-65535, got '99999'"),
        (10, "speaker[0].type", "must be one of exabgp, gobgp, got 'bird'"),
        (13, "speaker[0].peers[0].address", "must be an IP address, got '198.18.0.300'"),
        (18, "speaker[0].peers[1].address", "must be an IP address, got '198.18.0.300'"),
        (18, "speaker[0].peers[1].address",
         "duplicate peer address '198.18.0.300' (first at speaker[0].peers[0].address)"),
        (19, "speaker[0].peers[1].asn", "must be an integer, got str"),
        (21, "speaker[0].peers[1].familes", "unknown key"),
        (23, "speaker[1]", "duplicate speaker name 'a' (first at speaker[0])"),
        (25, "speaker[1].type",
         "a gobgp speaker needs [[speaker.peers]] (the routers it pushes FlowSpec to)"),
        (28, "flowspec.force", "must be true or false, got 'yes'"),
    ]


def test_missing_required_keys_name_their_table(tmp_path: Path) -> None:
    text = MINIMAL + '\n[[enforcer]]\nrouter = "r1"\n\n[[engine.mode]]\nmode = "redirect"\n'
    assert problems(text, tmp_path) == [
        (5, "enforcer[0]", "needs 'url' or 'netns'"),
        (8, "engine.mode[0]", "missing required key 'router'"),
        (9, "engine.mode[0].mode", "redirect needs 'redirect' as ASN:VALUE (route target), got ''"),
    ]


def test_missing_appliance_table(tmp_path: Path) -> None:
    found = problems("[api]\nlisten = '127.0.0.1:8000'\n", tmp_path)
    assert (0, "", "missing required table [appliance]") in found
    assert (0, "appliance", "missing required key 'asn'") in found


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    found = problems(MINIMAL + "\n[api\n", tmp_path)
    assert len(found) == 1 and found[0][0] == 5 and "not valid TOML" in found[0][2]


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert "cannot read" in str(info.value) and "absent.toml" in str(info.value)


def test_token_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "api.token").write_text("from-file-0123456789\n")
    config = parse_config(MINIMAL + '[api]\ntoken_file = "api.token"\n', tmp_path / "savd.toml")
    assert config.api.token == "from-file-0123456789"
    monkeypatch.delenv("SAVD_T", raising=False)
    text = MINIMAL + '[api]\ntoken_env = "SAVD_T"\nread_token_required = true\n'
    assert problems(text, tmp_path) == [
        (5, "api.token_env", "read_token_required is true but the token is empty or not configured")
    ]
    monkeypatch.setenv("SAVD_T", "from-env-0123456789")
    assert parse_config(text, tmp_path / "savd.toml").api.token == "from-env-0123456789"
    both = MINIMAL + '[api]\ntoken = "a"\ntoken_env = "SAVD_T"\n'
    assert problems(both, tmp_path)[0][:2] == (6, "api.token_env")


def test_action_for_prefers_the_most_specific(tmp_path: Path) -> None:
    text = MINIMAL + """
[engine.default]
mode = "monitor"
[[engine.mode]]
router = "r1"
interface = "eth1"
mode = "rate-limit"
rate = 1000.0
[[engine.mode]]
router = "r1"
mode = "drop"
"""
    engine = parse_config(text, tmp_path / "savd.toml").engine
    assert engine.action_for("r1", "eth1") == Action(Mode.RATE_LIMIT, 1000.0)
    assert engine.action_for("r1", "eth2") == Action(Mode.DROP)
    assert engine.action_for("r2", "eth1") == Action(Mode.MONITOR)


def test_engine_section_becomes_the_engine_policy(tmp_path: Path) -> None:
    text = MINIMAL + """
[engine]
algorithm = "loose"
[engine.default]
mode = "monitor"
[[engine.mode]]
router = "r4"
mode = "drop"
[[engine.interface_algorithm]]
router = "r4"
interface = "eth2"
algorithm = "bar-sav-pi"
"""
    policy = parse_config(text, tmp_path / "savd.toml").engine.policy()
    assert policy.algorithm_for("r4", "eth2") == Algorithm.BAR_SAV_PI
    assert policy.algorithm_for("r4", "eth1") == Algorithm.LOOSE
    assert policy.action_for("r4", "eth1") == Action(Mode.DROP)
    assert policy.action_for("r1", "eth1") == Action(Mode.MONITOR)
    bad = MINIMAL + '[engine]\nalgorithm = "efp-urpf-b"\n[[engine.interface_algorithm]]\nrouter = "r1"\n'
    assert problems(bad, tmp_path) == [
        (5, "engine.algorithm",
         "must be one of auto, strict, loose, feasible, efp-a, efp-b, bar-sav, bar-sav-pi, got 'efp-urpf-b'"),
        (6, "engine.interface_algorithm[0]", "missing required key 'interface'"),
        (6, "engine.interface_algorithm[0]", "missing required key 'algorithm'"),
    ]


def test_demo_config_is_valid_for_the_sav_basic_lab() -> None:
    config = load_config(REPO / "configs" / "demo.toml")
    flow, ls = config.speakers  # FlowSpec out (connects to FRR's port 179), BGP-LS in (listens on 1179)
    assert flow.netns == ls.netns == "svdemo-ctl" and not flow.listen_host
    assert (ls.listen_host, ls.listen_port) == ("198.18.20.10", 1179)
    for speaker in (flow, ls):
        assert sorted(p.router for p in speaker.peers) == ["r1", "r2", "r3", "r4"]
    assert all(p.passive and p.families == (Family.BGP_LS,) for p in ls.peers)
    assert all(set(p.families) == {Family.IPV4_FLOWSPEC, Family.IPV6_FLOWSPEC} for p in flow.peers)
    assert config.reports.file == REPO / "configs" / "demo-reports.yaml"
    assert [e.netns for e in config.enforcers] == ["svdemo-r1", "svdemo-r2", "svdemo-r3", "svdemo-r4"]


def test_line_index_handles_nesting_inline_and_multiline_values() -> None:
    text = """\
# comment with key = 1
[a]
x = 1  # trailing
list = [
  "not = a key",
]
s = \"\"\"
y = 2
\"\"\"
"q.k" = 3
[[b]]
[[b.c]]
v = 1
[[b]]
[[b.c]]
[[b.c]]
v = 2
[b.d]
w = 3
"""
    index = LineIndex(text)
    assert index.line_of(("a", "x")) == 3
    assert index.line_of(("a", "list")) == 4
    assert index.line_of(("a", "y")) == 2  # inside a multi-line string: falls back to the table
    assert index.line_of(("a", "q.k")) == 10
    assert index.line_of(("b", 1, "c", 1, "v")) == 17
    assert index.line_of(("b", 0, "c", 0, "v")) == 13
    assert index.line_of(("b", 1, "d", "w")) == 19
    assert index.line_of(("zzz",)) == 0


def test_cli_check_prints_ok_or_every_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(MINIMAL)
    assert main(["config", "check", str(good)]) == 0
    assert capsys.readouterr().out.startswith(f"OK {good}: AS65000")
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL.replace("65000", "-1") + "bogus = 1\n")
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{bad.resolve()}:2: appliance.asn: must be between 1 and 4294967295, got -1",
        f"{bad.resolve()}:4: appliance.bogus: unknown key",
        f"2 error(s) in {bad.resolve()}",
    ]


HEADERS = ["[appliance]", "[api]", "[[speaker]]", "[[speaker.peers]]", "[rpki]", "[[rpki.cache]]",
           "[[rpki.file]]", "[engine]", "[engine.default]", "[[engine.mode]]", "[[engine.neighbor]]",
           "[[engine.router]]", "[[engine.interface_algorithm]]", "[flowspec]", "[[enforcer]]", "[reports]",
           "[bogus]", "[api", "[[speaker]"]
KEYS = ["asn", "router_id", "name", "type", "listen", "address", "router", "interface", "mode", "rate",
        "redirect", "host", "port", "version", "families", "token", "path", "url", "netns", "relationship",
        "algorithm", "role", "force", "max_rules_per_router", '"quoted.key"', "a.b", "read_token_required"]
VALUES = ['65000', '0', '-1', '"198.18.0.1"', '"exabgp"', '"gobgp"', '"r1"', '"127.0.0.1:99999"', 'true',
          '"drop"', '"rate-limit"', '1.5', '["bgp-ls"]', '["nope"]', '[1, 2]', '{ x = 1 }', '"""\nmulti\n"""',
          '[\n"a",\n]', '"[v6"', "'lit'", '2026-11-23', '"customer"', '"auto"']
ASSIGNMENTS = st.tuples(st.sampled_from(KEYS), st.sampled_from(VALUES)).map(lambda kv: f"{kv[0]} = {kv[1]}")
LINES = st.one_of(st.sampled_from(HEADERS), ASSIGNMENTS, st.sampled_from(["", "# comment", "garbage line"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(LINES, max_size=25))
def test_any_text_gives_a_config_or_a_config_error_with_lines(lines: list[str]) -> None:
    text = "\n".join(lines)
    try:
        parse_config(text, Path("/nonexistent/savd.toml"))
    except ConfigError as exc:
        assert exc.problems
        assert all(0 <= p.line <= text.count("\n") + 1 for p in exc.problems)


def test_gobgp_speaker_errors_name_their_key(tmp_path: Path) -> None:
    text = MINIMAL + """
[[speaker]]
name = "fs"
type = "gobgp"
api = "127.0.0.1:50051"

  [[speaker.peers]]
  address = "198.18.255.1"
  asn = 65000
  router = "r1"
  families = ["ipv4-flowspec", "bgp-ls"]

  [[speaker.peers]]
  address = "198.18.255.2"
  asn = 65000
  router = "r2"

[[speaker]]
name = "ls"
type = "exabgp"
api = "127.0.0.1:50052"
"""
    assert problems(text, tmp_path) == [  # peers[1] has no families: a gobgp peer's default is FlowSpec
        (8, "speaker[0].api", "an external gobgpd sends its whole RIB to every neighbour: one router per "
                              "speaker, got r1, r2 (omit 'api' and savd runs one gobgpd per router)"),
        (14, "speaker[0].peers[0].families", "a gobgp speaker carries ipv4-flowspec/ipv6-flowspec only, "
                                             "got bgp-ls (BGP-LS goes through an exabgp speaker)"),
        (24, "speaker[1].api", "only gobgp speakers take 'api'"),
    ]
    one_router = text.replace('families = ["ipv4-flowspec", "bgp-ls"]', "").replace('"r2"', '"r1"')
    config = parse_config(one_router.split("[[speaker]]\nname = \"ls\"")[0], tmp_path / "savd.toml")
    flowspec = (Family.IPV4_FLOWSPEC, Family.IPV6_FLOWSPEC)
    assert [p.families for p in config.speakers[0].peers] == [flowspec, flowspec]


def test_demo_gobgp_config_differs_from_the_demo_config_in_the_flowspec_speaker_only() -> None:
    exa = load_config(REPO / "configs" / "demo.toml")
    gobgp = load_config(REPO / "configs" / "demo-gobgp.toml")
    assert [s.type for s in gobgp.speakers] == [SpeakerType.GOBGP, SpeakerType.EXABGP]
    assert gobgp.speakers[0].peers == exa.speakers[0].peers and not gobgp.speakers[0].api
    assert gobgp.speakers[1:] == exa.speakers[1:]
    assert (gobgp.engine, gobgp.enforcers, gobgp.rpki) == (exa.engine, exa.enforcers, exa.rpki)


def test_bmp_stations_and_their_router_names(tmp_path: Path) -> None:
    text = MINIMAL + '[[bmp]]\nname = "ctl"\nlisten = "[2001:db8::10]:11020"\nnetns = "lab-ctl"\n' \
        '  [bmp.routers]\n  "198.18.255.1" = "b1"\n'
    config = parse_config(text, tmp_path / "s.toml")
    (station,) = config.bmp  # type: ignore[attr-defined]
    assert (station.name, station.host, station.port, station.netns, station.routers) == \
        ("ctl", "2001:db8::10", 11020, "lab-ctl", (("198.18.255.1", "b1"),))
    bad = problems(MINIMAL + '[[bmp]]\nlisten = "198.18.20.10:99999"\n  [bmp.routers]\n  "r1" = "b1"\n'
                   '[[bmp]]\nport = 1\n', tmp_path)
    assert [(line, key) for line, key, _ in bad] == [
        (5, "bmp[0].listen"), (7, "bmp[0].routers.r1"), (8, "bmp[1]"), (9, "bmp[1].port")]


def test_timers_from_the_file_and_the_environment_which_wins(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config(MINIMAL + "[timers]\nbgpls_hold_s = 30\nbmp_flush_s = 0.5\n", tmp_path / "s.toml")
    assert (config.timers.bgpls_hold_s, config.timers.bmp_flush_s, config.timers.speaker_holdover_s) == \
        (30.0, 0.5, 120.0)
    monkeypatch.setenv("SAVD_BGPLS_HOLD_S", "4")
    timers = parse_config(MINIMAL + "[timers]\nbgpls_hold_s = 30\n", tmp_path / "s.toml").timers
    assert timers.bgpls_hold_s == 4.0
    monkeypatch.setenv("SAVD_SPEAKER_HOLDOVER_S", "soon")
    assert problems(MINIMAL, tmp_path) == [
        (0, "", "environment variable SAVD_SPEAKER_HOLDOVER_S must be a number of seconds >= 0, got "
                "'soon'")]
    monkeypatch.delenv("SAVD_SPEAKER_HOLDOVER_S")
    bad = problems(MINIMAL + "[timers]\nbgpls_hold = 3\n", tmp_path)
    assert [k for _, k, _ in bad] == ["timers.bgpls_hold"]


def test_a_route_server_neighbour_is_a_relationship(tmp_path: Path) -> None:
    config = parse_config(MINIMAL + '[[engine.neighbor]]\nrouter = "b1"\ninterface = "ix0"\nasn = 65050\n'
                          'relationship = "route-server"\naddress = "198.18.44.1"\n', tmp_path / "s.toml")
    assert config.engine.neighbors[0].relationship is Relationship.ROUTE_SERVER


def test_steering_section_and_its_inspectors(tmp_path: Path) -> None:
    config = parse(MINIMAL + """
[steering]
fallback = "drop"
scale_out_at = 0.9
scale_in_at = 0.1
ipv6_redirect = "ip"
[[steering.inspector]]
name = "dpi-1"
address = "2001:DB8:ff::10"
capacity = 1000
""", tmp_path)
    steering = config.steering  # type: ignore[attr-defined]
    asn = config.appliance.asn
    assert steering.policy == SteeringPolicy(SteeringFallback.DROP, 0.9, 0.1, ipv6_redirect=RedirectForm.IP,
                                             asn=asn)
    assert steering.inspectors == (Inspector("dpi-1", "2001:db8:ff::10", 1000.0),)
    default = parse(MINIMAL, tmp_path).steering.policy  # type: ignore[attr-defined]
    assert default == SteeringPolicy(asn=asn) and default.ipv6_redirect is RedirectForm.ROUTE_TARGET


def test_steering_errors_name_their_field(tmp_path: Path) -> None:
    found = problems(MINIMAL + """
[steering]
fallback = "maybe"
scale_in_at = 0.9
ipv6_redirect = "vrf"
[[steering.inspector]]
name = "dpi-1"
address = "not-an-ip"
capacity = 0
[[steering.inspector]]
name = "dpi-1"
address = "192.0.2.1"
""", tmp_path)
    keys = {(key, message.split(",")[0]) for _, key, message in found}
    assert ("steering.fallback", "must be one of accept") in keys
    assert ("steering.scale_in_at", "must be below scale_out_at (0.8)") in keys
    assert ("steering.ipv6_redirect", "must be one of route-target") in keys
    assert any(k == "steering.inspector[0].address" and "IP address" in m for _, k, m in found)
    assert any(k == "steering.inspector[0].capacity" and "> 0" in m for _, k, m in found)
    assert any(k == "steering.inspector[1].capacity" and "missing" in m for _, k, m in found)
    assert any("duplicate inspector 'dpi-1'" in m for _, _, m in found)
