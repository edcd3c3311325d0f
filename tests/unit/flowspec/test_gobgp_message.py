"""GoBGP protobuf built from a rule: family, NLRI components, the MP_REACH next hop (§2.1 gotcha)
and the extended communities, read back from the serialised message."""

from __future__ import annotations

from appliance.flowspec import ActionKind, FlowAction, FlowMatch, FlowRule
from appliance.flowspec.render_gobgp import to_path
from appliance.speakers.gobgp import api, attr, path_message


def test_path_message_round_trips_through_protobuf() -> None:
    rule = FlowRule("r1", FlowMatch("198.18.1.0/24", 0), FlowAction(ActionKind.DISCARD), (7,))
    wire = path_message(to_path(rule, group_asn=1)).SerializeToString()
    path = api.Path.FromString(wire)
    assert (path.family.afi, path.family.safi) == (1, 133)
    nlri = attr.FlowSpecNLRI()
    assert path.nlri.Unpack(nlri)
    prefix, comp = attr.FlowSpecIPPrefix(), attr.FlowSpecComponent()
    assert nlri.rules[0].Unpack(prefix) and nlri.rules[1].Unpack(comp)
    assert (prefix.type, prefix.prefix, prefix.prefix_len) == (2, "198.18.1.0", 24)
    assert (comp.type, [(i.op, i.value) for i in comp.items]) == (10, [(0x83, 0)])
    reach, comms = attr.MpReachNLRIAttribute(), attr.ExtendedCommunitiesAttribute()
    assert path.pattrs[1].Unpack(reach) and list(reach.next_hops) == ["0.0.0.0"]
    assert path.pattrs[2].Unpack(comms)
    rate, unknown = attr.TrafficRateExtended(), attr.UnknownExtended()
    assert comms.communities[0].Unpack(rate) and rate.rate == 0.0
    assert comms.communities[1].Unpack(unknown)
    assert int.from_bytes(bytes([unknown.type]) + unknown.value, "big") == 504966108218998791


def test_ipv6_path_uses_ipv6_next_hop() -> None:
    rule = FlowRule("r1", FlowMatch("2001:db8::/32"), FlowAction(ActionKind.ACCEPT), (1,))
    path = path_message(to_path(rule))
    reach = attr.MpReachNLRIAttribute()
    assert path.pattrs[1].Unpack(reach)
    assert (path.family.afi, list(reach.next_hops), len(path.pattrs)) == (2, ["::"], 3)  # + interface-set


def test_speaker_refuses_several_routers_and_unknown_peers(tmp_path: object) -> None:
    import asyncio
    from pathlib import Path

    import pytest

    from appliance.speakers.gobgp import GoBgpError, GoBgpNeighbor, GoBgpSpeaker

    work = Path(str(tmp_path))
    with pytest.raises(GoBgpError, match="one speaker per router"):
        GoBgpSpeaker(work, neighbors=[GoBgpNeighbor("198.18.0.1", 65010, name="r1"),
                                      GoBgpNeighbor("198.18.0.5", 65011, name="r2")])
    sp = GoBgpSpeaker(work, neighbors=[GoBgpNeighbor("198.18.0.1", 65010, name="r1"),
                                       GoBgpNeighbor("2001:db8::1", 65010, name="r1")])
    with pytest.raises(GoBgpError, match=r"198\.18\.0\.9 is not a neighbour"):
        asyncio.run(sp.announce("198.18.0.9", []))
