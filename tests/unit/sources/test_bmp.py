"""BmpDecoder on crafted BMP streams (RFC 7854 / 9069): every message kind, add-path and 4-byte ASNs
from the Peer Up OPENs, AS_SET kept apart, FRR's quirks, and bad input that must never raise."""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.sources.paths.bmp import AttrCache, BmpDecoder, read_prefixes
from appliance.sources.paths.events import (
    BmpEvent,
    EndOfRib,
    Malformed,
    PeerDown,
    PeerUp,
    Route,
    RouterDown,
    RouterUp,
    Routes,
)

ROUTER = "198.18.0.1"
PEER4 = "198.18.1.2"
PEER6 = "2001:db8:1::2"
PEER_AS = 4200000001  # a 4-byte private ASN: only decodable with the 4-byte ASN capability
LOCAL_AS = 64512


# ---------------------------------------------------------------- builders (BMP + BGP, by hand)

def bmp(mtype: int, body: bytes) -> bytes:
    return struct.pack("!BIB", 3, 6 + len(body), mtype) + body


def tlv(ttype: int, value: bytes) -> bytes:
    return struct.pack("!HH", ttype, len(value)) + value


def initiation(sys_name: str = "r1", sys_descr: str = "Test BMP speaker 1.0") -> bytes:
    return bmp(4, tlv(1, sys_descr.encode()) + tlv(2, sys_name.encode()))


def termination(code: int = 0) -> bytes:
    return bmp(5, tlv(0, b"bye") + tlv(1, struct.pack("!H", code)))


def per_peer(address: str = PEER4, peer_as: int = PEER_AS, *, ptype: int = 0, flags: int = 0,
             bgp_id: str = "198.18.1.2") -> bytes:
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ptype != 3:
        flags |= 0x80
    raw = ip.packed if ip.version == 6 else bytes(12) + ip.packed
    return struct.pack("!BB8s16sI4sII", ptype, flags, bytes(8), raw, peer_as,
                       ipaddress.IPv4Address(bgp_id).packed, 1700000000, 0)


def bgp(mtype: int, body: bytes) -> bytes:
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), mtype) + body


def capability(code: int, value: bytes) -> bytes:
    return bytes([2, 2 + len(value), code, len(value)]) + value


def bgp_open(asn: int, router_id: str, *, asn4: bool = True, addpath: int = 0) -> bytes:
    """An OPEN with MP IPv4+IPv6 unicast, optionally 4-byte ASN and add-path (1 receive, 2 send, 3 both)."""
    params = capability(1, struct.pack("!HBB", 1, 0, 1)) + capability(1, struct.pack("!HBB", 2, 0, 1))
    if asn4:
        params += capability(65, struct.pack("!I", asn))
    if addpath:
        params += capability(69, struct.pack("!HBBHBB", 1, 1, addpath, 2, 1, addpath))
    my_as = asn if asn < 65536 else 23456
    body = struct.pack("!BHH4sB", 4, my_as, 90, ipaddress.IPv4Address(router_id).packed, len(params)) + params
    return bgp(1, body)


def peer_up(address: str = PEER4, peer_as: int = PEER_AS, *, asn4: bool = True, addpath: bool = False,
            ptype: int = 0) -> bytes:
    sent = bgp_open(LOCAL_AS, ROUTER, asn4=asn4, addpath=1 if addpath else 0)      # router: "I receive"
    received = bgp_open(peer_as, "198.18.1.2", asn4=asn4, addpath=2 if addpath else 0)  # peer: "I send"
    local = bytes(12) + ipaddress.IPv4Address(ROUTER).packed
    return bmp(3, per_peer(address, peer_as, ptype=ptype) + local + struct.pack("!HH", 179, 40000)
               + sent + received)


def peer_down(address: str = PEER4, peer_as: int = PEER_AS, reason: int = 3) -> bytes:
    data = bgp(3, bytes([6, 2])) if reason in (1, 3) else struct.pack("!H", 0) if reason == 2 else b""
    return bmp(2, per_peer(address, peer_as) + bytes([reason]) + data)


def attr(code: int, value: bytes, flags: int = 0x40) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def as_path(*segments: tuple[int, list[int]], asn4: bool = True) -> bytes:
    fmt = "!I" if asn4 else "!H"
    return attr(2, b"".join(bytes([kind, len(asns)]) + b"".join(struct.pack(fmt, a) for a in asns)
                            for kind, asns in segments))


def nlri(prefix: str, path_id: int | None = None) -> bytes:
    net = ipaddress.ip_network(prefix)
    head = struct.pack("!I", path_id) if path_id is not None else b""
    return head + bytes([net.prefixlen]) + net.network_address.packed[: (net.prefixlen + 7) // 8]


def update(*, withdrawn: bytes = b"", attrs: bytes = b"", announced: bytes = b"") -> bytes:
    return bgp(2, struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs
               + announced)


def mp_reach(afi: int, nh: bytes, prefixes: bytes, safi: int = 1) -> bytes:
    return attr(14, struct.pack("!HBB", afi, safi, len(nh)) + nh + b"\x00" + prefixes, flags=0x80)


def mp_unreach(afi: int, prefixes: bytes, safi: int = 1) -> bytes:
    return attr(15, struct.pack("!HB", afi, safi) + prefixes, flags=0x80)


def monitoring(upd: bytes, address: str = PEER4, peer_as: int = PEER_AS, **kw: int) -> bytes:
    return bmp(0, per_peer(address, peer_as, **kw) + upd)


ORIGIN = attr(1, b"\x00")
NH4 = attr(3, ipaddress.IPv4Address(PEER4).packed)
NH6 = ipaddress.IPv6Address(PEER6).packed


def decode(stream: bytes, *, chunk: int | None = None, **kw: object) -> tuple[BmpDecoder, list[BmpEvent]]:
    dec = BmpDecoder(ROUTER, **kw)  # type: ignore[arg-type]
    events: list[BmpEvent] = []
    step = chunk or len(stream) or 1
    for i in range(0, len(stream), step):
        events += dec.feed(stream[i : i + step])
    return dec, events


# ---------------------------------------------------------------- a full session

def session_stream() -> bytes:
    """Initiation, one IPv4 peer with add-path + 4-byte ASNs, routes of both families, EoRs, down."""
    path = as_path((2, [PEER_AS, 65010, 65020]), (1, [65040, 65030]))
    path6 = as_path((2, [PEER_AS, 64600]), (3, [64700]))           # confed segment dropped
    return b"".join([
        initiation(),
        peer_up(addpath=True),
        monitoring(update(attrs=ORIGIN + path + NH4, announced=nlri("198.18.10.0/24", 1)
                          + nlri("198.18.11.0/24", 2))),
        monitoring(update(attrs=ORIGIN + path6 + mp_reach(2, NH6, nlri("2001:db8:10::/48", 7)))),
        monitoring(update(withdrawn=nlri("198.18.11.0/24", 2))),
        monitoring(update(attrs=mp_unreach(2, nlri("2001:db8:10::/48", 7)))),
        monitoring(update()),                                          # IPv4 End-of-RIB
        monitoring(update(attrs=mp_unreach(2, b""))),                  # IPv6 End-of-RIB
        bmp(1, per_peer() + struct.pack("!I", 0)),                     # statistics: skipped
        peer_down(),
        termination(),
    ])


EXPECTED = [
    RouterUp("r1", ROUTER, "r1", "Test BMP speaker 1.0"),
    PeerUp("r1", PEER4, PEER_AS, "198.18.1.2", False),
    Routes("r1", PEER4, PEER_AS, (
        Route("198.18.10.0/24", (PEER_AS, 65010, 65020), (65030, 65040), 1),
        Route("198.18.11.0/24", (PEER_AS, 65010, 65020), (65030, 65040), 2),
    ), ()),
    Routes("r1", PEER4, PEER_AS, (Route("2001:db8:10::/48", (PEER_AS, 64600), (), 7),), ()),
    Routes("r1", PEER4, PEER_AS, (), (("198.18.11.0/24", 2),)),
    Routes("r1", PEER4, PEER_AS, (), (("2001:db8:10::/48", 7),)),
    EndOfRib("r1", PEER4, "ipv4 unicast"),
    EndOfRib("r1", PEER4, "ipv6 unicast"),
    PeerDown("r1", PEER4, "remote-notification 6/2"),
]


def test_full_session_decodes_to_typed_events() -> None:
    dec, events = decode(session_stream())
    assert events == EXPECTED
    assert dec.terminated == "terminated: administratively-closed (bye)"
    assert dec.close("connection closed") == [RouterDown("r1", "terminated: administratively-closed (bye)")]
    assert dec.close("again") == []
    assert dec.counters["skipped_statistics"] == 1 and dec.counters["malformed"] == 0


def test_one_byte_chunks_give_the_same_events() -> None:
    _, events = decode(session_stream(), chunk=1)
    assert events == EXPECTED


def test_exabgp_reference_path_gives_the_same_events() -> None:
    _, events = decode(session_stream(), exabgp_only=True)
    assert events == EXPECTED


def test_configured_router_name_wins_over_sys_name() -> None:
    dec, events = decode(initiation("frr-hostname") + peer_up(), router_name="edge-1")
    assert events[0] == RouterUp("edge-1", ROUTER, "frr-hostname", "Test BMP speaker 1.0")
    assert events[1].router == "edge-1"  # type: ignore[union-attr]
    assert dec.router == "edge-1"


def test_routes_held_follow_announce_withdraw_and_peer_down() -> None:
    stream = initiation() + peer_up() + monitoring(update(
        attrs=ORIGIN + as_path((2, [PEER_AS])) + NH4,
        announced=nlri("198.18.20.0/24") + nlri("198.18.21.0/24")))
    dec, _ = decode(stream)
    assert (dec.peers_up(), dec.routes_held()) == (1, 2)
    dec.feed(monitoring(update(withdrawn=nlri("198.18.20.0/24"))))
    assert dec.routes_held() == 1
    dec.feed(peer_down(reason=4))
    assert (dec.peers_up(), dec.routes_held()) == (0, 0)


# ---------------------------------------------------------------- quirks and flags

def test_frr_quirks_no_path_ids_and_own_as_prepended() -> None:
    """FRR's bmp_update drops add-path ids (reading 4 octets of path id would garble the prefix) and
    prepends its own AS to eBGP paths, as if sending to the peer: both undone for an FRRouting router."""
    stream = initiation("r9", "FRRouting 8.4.4") + peer_up(addpath=True) + monitoring(update(
        attrs=ORIGIN + as_path((2, [LOCAL_AS, PEER_AS, 65010])) + NH4
        + mp_reach(2, NH6, nlri("2001:db8:99::/48")),
        announced=nlri("198.18.99.0/24")))
    for exabgp_only in (False, True):
        _, events = decode(stream, exabgp_only=exabgp_only)
        assert events[-1] == Routes("r9", PEER4, PEER_AS, (
            Route("198.18.99.0/24", (PEER_AS, 65010)), Route("2001:db8:99::/48", (PEER_AS, 65010))), ())
    other = initiation("r9", "Other 1.0") + peer_up() + monitoring(update(
        attrs=ORIGIN + as_path((2, [LOCAL_AS, PEER_AS])) + NH4, announced=nlri("198.18.99.0/24")))
    _, events = decode(other)   # not FRR: the path is taken as sent
    assert events[-1] == Routes("r9", PEER4, PEER_AS, (Route("198.18.99.0/24", (LOCAL_AS, PEER_AS)),), ())


def test_two_octet_session_with_as4_path_is_reconciled() -> None:
    """An old (non-4-byte) session: AS_TRANS in AS_PATH, the real ASNs in AS4_PATH (RFC 6793)."""
    path2 = as_path((2, [65001, 23456, 65020]), asn4=False)
    as4 = attr(17, bytes([2, 2]) + struct.pack("!II", 4200000002, 65020), flags=0xC0)
    stream = initiation() + peer_up(peer_as=65001, asn4=False) + monitoring(
        update(attrs=ORIGIN + path2 + as4 + NH4, announced=nlri("198.18.30.0/24")), peer_as=65001)
    for exabgp_only in (False, True):
        _, events = decode(stream, exabgp_only=exabgp_only)
        assert events[-1] == Routes("r1", PEER4, 65001,
                                    (Route("198.18.30.0/24", (65001, 4200000002, 65020)),), ())


def test_a_flag_forces_two_octet_as_path() -> None:
    path2 = as_path((2, [65001, 65002]), asn4=False)
    stream = initiation() + peer_up() + monitoring(
        update(attrs=ORIGIN + path2 + NH4, announced=nlri("198.18.31.0/24")), flags=0x20)
    _, events = decode(stream)
    assert events[-1].announced == (Route("198.18.31.0/24", (65001, 65002)),)  # type: ignore[union-attr]


def test_post_policy_is_marked_and_not_held() -> None:
    stream = initiation() + peer_up() + monitoring(
        update(attrs=ORIGIN + as_path((2, [PEER_AS])) + NH4, announced=nlri("198.18.32.0/24")), flags=0x40)
    dec, events = decode(stream)
    assert isinstance(events[-1], Routes) and events[-1].post_policy and not events[-1].loc_rib
    assert dec.routes_held() == 0


def test_loc_rib_without_peer_up_uses_the_source_peer_state() -> None:
    """FRR's Loc-RIB messages (peer type 3) name the path's source peer and have no Peer Up of their own."""
    stream = initiation() + peer_up(addpath=True) + monitoring(
        update(attrs=ORIGIN + as_path((2, [PEER_AS, 65010])) + NH4, announced=nlri("198.18.33.0/24", 5)),
        ptype=3)
    _, events = decode(stream)
    assert events[-1] == Routes("r1", PEER4, PEER_AS, (Route("198.18.33.0/24", (PEER_AS, 65010), (), 5),), (),
                                post_policy=False, loc_rib=True)


def test_loc_rib_peer_up_is_reported() -> None:
    _, events = decode(initiation() + peer_up("0.0.0.0", LOCAL_AS, ptype=3))
    assert events[-1] == PeerUp("r1", "0.0.0.0", LOCAL_AS, "198.18.1.2", True)


def test_other_families_and_peer_types_are_skipped_and_counted() -> None:
    flow = mp_reach(1, b"", b"\x05\x01\x18\xc6\x12\x00", safi=133)
    stream = (initiation() + peer_up() + monitoring(update(attrs=ORIGIN + as_path((2, [PEER_AS])) + flow))
              + monitoring(update(attrs=ORIGIN + as_path((2, [PEER_AS])) + NH4,
                                  announced=nlri("198.18.0.0/24")), ptype=1)
              + monitoring(update(attrs=mp_unreach(1, b"", safi=133))))
    dec, events = decode(stream)
    assert events[-1] == Routes("r1", PEER4, PEER_AS, (), ())
    assert dec.counters["skipped_family"] == 2 and dec.counters["skipped_peer_type"] == 1
    assert not any(isinstance(e, Malformed) for e in events)


def test_treat_as_withdraw_turns_announcements_into_withdrawals() -> None:
    bad_origin = attr(1, b"")  # RFC 7606 §7.1: ORIGIN of the wrong length -> treat-as-withdraw
    stream = initiation() + peer_up() + monitoring(
        update(attrs=bad_origin + as_path((2, [PEER_AS])) + NH4, announced=nlri("198.18.34.0/24")))
    _, events = decode(stream)
    assert events[-1] == Routes("r1", PEER4, PEER_AS, (), (("198.18.34.0/24", 0),))


def test_attribute_cache_is_shared_and_hit() -> None:
    cache = AttrCache()
    attrs = ORIGIN + as_path((2, [PEER_AS, 65010])) + NH4
    stream = initiation() + peer_up() + b"".join(
        monitoring(update(attrs=attrs, announced=nlri(f"198.18.{i}.0/24"))) for i in range(50))
    _, events = decode(stream, attr_cache=cache)
    assert sum(len(e.announced) for e in events if isinstance(e, Routes)) == 50
    assert (cache.misses, cache.hits, len(cache)) == (1, 49, 1)


# ---------------------------------------------------------------- bad input

def test_bad_update_inside_intact_framing_is_malformed_and_the_session_goes_on() -> None:
    good = monitoring(update(attrs=ORIGIN + as_path((2, [PEER_AS])) + NH4, announced=nlri("198.18.40.0/24")))
    truncated = monitoring(update(attrs=ORIGIN + as_path((2, [PEER_AS])) + NH4, announced=b"\x18\xc6"))
    not_update = bmp(0, per_peer() + bgp(4, b""))
    bad_tlv = bmp(4, b"\x00\x01\x00\x09abc")
    dec, events = decode(initiation() + peer_up() + truncated + not_update + bad_tlv + good)
    malformed = [e for e in events if isinstance(e, Malformed)]
    assert len(malformed) == 3 and all(m.router == "r1" and m.address == ROUTER for m in malformed)
    assert "truncated" in malformed[0].detail
    assert events[-1] == Routes("r1", PEER4, PEER_AS, (Route("198.18.40.0/24", (PEER_AS,)),), ())
    assert not dec.closed and dec.counters["malformed"] == 3


@pytest.mark.parametrize("header", [
    struct.pack("!BIB", 1, 6, 4),                   # BMP version 1
    struct.pack("!BIB", 3, 3, 4),                   # length shorter than the header
    struct.pack("!BIB", 3, 16 * 1024 * 1024 + 1, 0),  # over the 16 MiB bound
])
def test_lost_framing_closes_the_session(header: bytes) -> None:
    dec, events = decode(initiation() + header + bytes(64) + peer_up(), chunk=7)
    assert events[0] == RouterUp("r1", ROUTER, "r1", "Test BMP speaker 1.0")
    assert isinstance(events[1], Malformed) and "framing lost" in events[1].detail
    assert len(events) == 2 and dec.closed
    assert dec.feed(peer_up()) == []
    assert dec.close("framing lost") == [RouterDown("r1", "framing lost")]


def test_random_corruption_never_raises() -> None:
    rng = random.Random(7)
    base = session_stream()
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        dec, events = decode(bytes(data), chunk=rng.randint(1, 64))
        assert all(isinstance(e, (RouterUp, PeerUp, PeerDown, Routes, EndOfRib, Malformed)) for e in events)
        assert dec.close("x")[0].reason in ("x", dec.terminated)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_never_raises(data: bytes) -> None:
    _, events = decode(initiation() + peer_up() + data, chunk=5)
    assert events[:2] == [RouterUp("r1", ROUTER, "r1", "Test BMP speaker 1.0"),
                          PeerUp("r1", PEER4, PEER_AS, "198.18.1.2", False)]
    assert all(isinstance(e, (Routes, EndOfRib, Malformed, PeerUp, PeerDown, RouterUp)) for e in events[2:])


# ---------------------------------------------------------------- prefixes

@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**128 - 1), st.integers(0, 128), st.booleans(), st.integers(0, 2**32 - 1))
def test_prefixes_are_canonical_like_ipaddress(value: int, plen: int, v6: bool, path_id: int) -> None:
    width = 128 if v6 else 32
    plen = plen % (width + 1)
    value &= (1 << width) - 1
    raw_len = (plen + 7) // 8
    raw = (value.to_bytes(width // 8, "big"))[:raw_len]      # host bits may be set: must be cleared
    data = struct.pack("!I", path_id) + bytes([plen]) + raw
    [(prefix, pid)] = read_prefixes(data, v6, True)
    address = ipaddress.IPv6Address(value) if v6 else ipaddress.IPv4Address(value)
    net = ipaddress.ip_network((address, plen), strict=False)
    assert (prefix, pid) == (str(net), path_id)


def test_ipv4_mapped_and_compatible_prefixes_use_ipaddress_spelling() -> None:
    data = nlri("::ffff:198.18.0.0/112") + nlri("::198.18.0.0/112") + nlri("::/0")
    assert [p for p, _ in read_prefixes(data, True, False)] == ["::ffff:c612:0/112", "::c612:0/112", "::/0"]


def test_bad_prefix_length_is_an_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="prefix length 33"):
        read_prefixes(b"\x21\x01\x02\x03\x04\x05", False, False)
