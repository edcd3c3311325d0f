"""ExaBGP 5.0.15 API lines -> typed speaker events; garbage and truncated lines never raise."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.speakers.exabgp import (
    EndOfRib,
    ExaNeighbor,
    MalformedLine,
    SessionDown,
    SessionUp,
    SpeakerError,
    UpdateReceived,
    loads,
    parse_api_line,
    render_config,
    render_env,
)

# Recorded from exabgp 5.0.15 (pid/host/time kept as printed; the parser ignores them).
UP = (
    '{ "exabgp": "5.0.0", "time": 1779563651.0, "host" : "h", "pid" : 1, "ppid" : 1, "counter": 1, '
    '"type": "state", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, '
    '"asn": { "local": 65001, "peer": 65002 } , "state": "up" } }'
)
DOWN = UP.replace('"state": "up"', '"state": "down", "reason": "peer reset"')
HEAD = '{ "exabgp": "5.0.0", "time": 1.0, "host" : "h", "pid" : 1, "ppid" : 1, "counter": 2, '
EOR = (
    HEAD + '"type": "update", "neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, '
    '"asn": { "local": 65001, '
    '"peer": 65002 } , "direction": "receive", "message": { "eor": { "afi" : "ipv4", "safi" : "flow" } '
    "} } }"
)
FLOW = (
    HEAD + '"type": "update", '
    '"neighbor": { "address": { "local": "127.0.0.1", "peer": "127.0.0.2" }, "asn": { "local": 65001, '
    '"peer": 65002 } , "direction": "receive", "message": { "update": { "attribute": { "origin": "igp", '
    '"extended-community": [ { "value": 9225060886715039744, "string": "rate-limit:0" } ] }, '
    '"announce": { "ipv4 flow": { "no-nexthop": [ { "source-ipv4": [ "198.18.1.0/24" ], '
    '"string": "flow source-ipv4 198.18.1.0/24" } ] } } } } } }'
)
WITHDRAW = FLOW.replace(
    '"announce": { "ipv4 flow": { "no-nexthop": [', '"withdraw": { "ipv4 flow": ['
).replace("} ] } } } } } }", "} ] } } } } }")
NAMES = {"127.0.0.2": "r2"}


def test_session_up_and_down_carry_peer_and_name() -> None:
    assert parse_api_line(UP, NAMES) == SessionUp("127.0.0.2", "r2")
    assert parse_api_line(DOWN, NAMES) == SessionDown("127.0.0.2", "r2", "peer reset")


def test_end_of_rib_names_the_family() -> None:
    assert parse_api_line(EOR, NAMES) == EndOfRib("127.0.0.2", "r2", "ipv4 flow")


def test_update_passes_family_payload_through() -> None:
    ev = parse_api_line(FLOW, NAMES)
    assert isinstance(ev, UpdateReceived)
    assert ev.neighbor == "127.0.0.2"
    assert ev.announce["ipv4 flow"]["no-nexthop"][0]["source-ipv4"] == ["198.18.1.0/24"]
    assert ev.attribute["extended-community"][0]["string"] == "rate-limit:0"
    assert ev.withdraw == {}


def test_withdraw_has_no_next_hop_level() -> None:
    ev = parse_api_line(WITHDRAW, NAMES)
    assert isinstance(ev, UpdateReceived)
    assert json.loads(WITHDRAW)  # the fixture itself is valid JSON
    assert ev.withdraw["ipv4 flow"][0]["source-ipv4"] == ["198.18.1.0/24"]
    assert ev.announce == {}


def test_messages_savd_does_not_consume_are_ignored() -> None:
    assert parse_api_line(UP.replace('"type": "state"', '"type": "keepalive"')) is None
    assert parse_api_line(UP.replace('"state": "up"', '"state": "connected"')) is None
    assert parse_api_line("   ") is None


def test_duplicate_keys_keep_every_value_in_order() -> None:
    assert loads('{"a": 1, "b": 2, "a": 3, "a": [4]}') == {"a": [1, 3, [4]], "b": 2}


def test_wrong_shapes_are_malformed_not_exceptions() -> None:
    weird = UP.replace('"state": "up"', '"state": "weird"')
    for line in (
        "[1,2]",
        '{"type": 5}',
        '{"type": "update"}',
        weird,
        FLOW.replace('"no-nexthop": [', '"no-nexthop": {"x": ').replace("} ] } }", "} } } }", 1),
    ):
        ev = parse_api_line(line)
        assert isinstance(ev, MalformedLine), line
        assert ev.line == line[:4096]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_garbage_lines_never_raise(text: str) -> None:
    ev = parse_api_line(text)
    assert ev is None or isinstance(ev, MalformedLine | SessionUp | SessionDown | EndOfRib | UpdateReceived)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([UP, DOWN, EOR, FLOW, WITHDRAW]), st.data())
def test_truncated_lines_are_malformed(line: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=1, max_value=len(line) - 1))
    ev = parse_api_line(line[:cut])
    assert isinstance(ev, MalformedLine)


def test_render_config_contains_each_neighbor_and_family() -> None:
    n1 = ExaNeighbor(
        "198.18.0.1", "198.18.0.2", 65000, 65001, "198.18.0.2", ("bgp-ls bgp-ls",), passive=True, name="r1"
    )
    n2 = ExaNeighbor(
        "198.18.0.5", "198.18.0.6", 65000, 65002, "198.18.0.2", ("ipv4 flow", "ipv6 flow"), port=1790
    )
    text = render_config([n1, n2], "/usr/bin/relay sock")
    assert "run /usr/bin/relay sock;" in text
    assert "neighbor 198.18.0.1 {" in text and "passive true;" in text and "bgp-ls bgp-ls;" in text
    assert "neighbor 198.18.0.5 {" in text and "connect 1790;" in text and "ipv6 flow;" in text
    assert render_env(("198.18.0.2", 1179)).count("bind = '198.18.0.2'") == 1
    assert "port = 1179" in render_env(("198.18.0.2", 1179))


def test_render_config_rejects_bad_neighbors_naming_the_peer() -> None:
    bad = ExaNeighbor("198.18.0.1", "x; y", 65000, 65001, "198.18.0.2", ("bgp-ls bgp-ls",))
    try:
        render_config([bad], "relay")
    except SpeakerError as exc:
        assert exc.peer == "198.18.0.1" and "local_address" in str(exc)
    else:
        raise AssertionError("bad local_address accepted")
    dup = ExaNeighbor("198.18.0.1", "198.18.0.2", 65000, 65001, "198.18.0.2", ("bgp-ls bgp-ls",))
    try:
        render_config([dup, dup], "relay")
    except SpeakerError as exc:
        assert "twice" in str(exc)
    else:
        raise AssertionError("duplicate neighbour accepted")


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.text(max_size=20)
    | st.floats(allow_nan=False)
)
json_values = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=20,
)
NLRI_KEYS = [
    "ls-nlri-type",
    "protocol-id",
    "l3-routing-topology",
    "node-descriptors",
    "local-node-descriptors",
    "remote-node-descriptors",
    "interface-addresses",
    "neighbor-addresses",
    "link-identifiers",
    "multi-topology-ids",
    "ip-reach-prefix",
    "ospf-route-type",
]
nlri_like = st.dictionaries(
    st.sampled_from(NLRI_KEYS),
    json_values
    | st.sampled_from(
        ["bgpls-node", "bgpls-link", "bgpls-prefix-v4", [{"router-id": "198.18.0.1"}], "198.18.0.0/24"]
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(nlri_like, max_size=4),
    st.dictionaries(
        st.sampled_from(
            [
                "igp-metric",
                "node-name",
                "igp-flags",
                "prefix-metric",
                "igp-route-tags",
                "maximum-link-bandwidth",
                "remote-te-router-id",
                "link-name",
            ]
        ),
        json_values,
        max_size=4,
    ),
)
def test_bgpls_decoder_isolates_any_malformed_nlri(
    nlris: list[dict[str, object]], attrs: dict[str, object]
) -> None:
    """Whatever shape the NLRI and attributes take, decode_update returns (events, errors) and never raises;
    every NLRI is accounted for exactly once."""
    from appliance.sources.bgpls.decode import decode_update

    update = UpdateReceived(
        "198.18.0.1",
        "r1",
        {"bgp-ls": attrs},
        {"bgp-ls bgp-ls": {"198.18.0.1": nlris}},
        {"bgp-ls bgp-ls": nlris},
    )
    events, errors = decode_update(update)
    assert len(events) + len(errors) == 2 * len(nlris)
