"""BMP (RFC 7854, RFC 9069 Loc-RIB) decoding: one router's byte stream in, typed path events out.

Owns the BMP framing and the per-peer negotiated state of one BMP session; pure (no sockets, clocks or
tasks), so the station (station.py) and the tests drive it the same way, byte by byte if they like.

What is hand-written and what is ExaBGP's. The BMP framing is small and written here: the common header,
the per-peer header, Initiation/Termination TLVs, Peer Up/Down, Route Monitoring; Statistics Reports and
Route Mirroring are counted and skipped. BGP itself is ExaBGP 5.0's: Peer Up's two OPENs are decoded with
`Open.unpack_message` into a `Negotiated` (4-byte ASN, add-path, families), and path attributes with
`Attributes.unpack` (AS_PATH/AS4_PATH reconciliation, RFC 7606 treat-as-withdraw). `Update.unpack_message`
costs ~40 us per one-route UPDATE (its NLRI objects alone cap it near 40k routes/s), and a router's BMP
feed is one route per message (FRR builds one UPDATE per prefix), so the per-route work is kept small:
the attribute section is decoded by ExaBGP once per distinct byte string (`AttrCache`, keyed by the 4-byte
ASN mode and the raw bytes minus MP_REACH/MP_UNREACH, which carry the NLRI), and the NLRI prefixes (RFC
4271 §4.3 length+bytes, RFC 7911 path identifier) are read here. `BmpDecoder(exabgp_only=True)` sends
every UPDATE through `Update.unpack_message` instead; the tests check both give the same events.

::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |    Version    |                 Message Length                |     common header (RFC 7854 §4.1)
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |  Msg. Length  |    Msg. Type  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |   Peer Type   |  Peer Flags   |                                  per-peer header (§4.2), 42 octets:
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+        distinguisher (8), address (16), AS (4), BGP ID (4),
                                             timestamp seconds (4) and microseconds (4)

Peer types: 0 global instance, 1 RD instance, 2 local instance, 3 Loc-RIB (RFC 9069). Flags for 0-2:
V (0x80) IPv6 address, L (0x40) post-policy, A (0x20) 2-octet AS_PATH, O (0x10) Adj-RIB-Out (RFC 8671).

Quirks handled:
- FRR (every release through at least 10.x) never puts add-path identifiers in its Route Monitoring
  UPDATEs, even when the monitored session negotiated add-path ("add-path removed" in bgpd/bgp_bmp.c
  bmp_update). Reading them as the OPENs say would shift every prefix by 4 octets, so for a router whose
  sysDescr starts with "FRRouting" the add-path receive state is ignored; for others it is honoured.
- FRR 8.4 builds its Route Monitoring UPDATE with the code that sends to the peer, so an eBGP path arrives
  with FRR's own AS prepended (`show bgp` has "64601 64700", BMP carries "64600 64601 64700"). For an
  FRRouting router and an eBGP peer, a leading AS equal to the router's AS (its sent OPEN) is removed.
- FRR encodes AS_PATH as the monitored session does (2-octet for a non-4-byte peer) without setting the
  A flag; so the A flag forces 2-octet, and otherwise the OPENs decide.
- Peer types 1 and 2 (VRF/local instances) and Adj-RIB-Out (O flag) are not received paths of the global
  table: counted and skipped. Families other than IPv4/IPv6 unicast: counted and skipped.

Must not: keep routes beyond the counts `status` needs, or make SAV decisions.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import socket
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exabgp.bgp.message.direction import Direction
from exabgp.bgp.message.open import Open
from exabgp.bgp.message.open.capability import Capability
from exabgp.bgp.message.open.capability.negotiated import Negotiated
from exabgp.bgp.message.update import EOR, Update
from exabgp.bgp.message.update.attribute import Attribute, Attributes
from exabgp.bgp.message.update.attribute.aspath import SEQUENCE, SET
from exabgp.logger import log as exabgp_log
from exabgp.protocol.family import AFI, SAFI

from appliance.errors import PeerDataError
from appliance.names import router_name_problem
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

log = logging.getLogger("savd.bmp")

BMP_VERSION = 3
COMMON_HEADER_LEN = 6
PER_PEER_HEADER_LEN = 42
BGP_HEADER_LEN = 19
MAX_MESSAGE_LEN = 16 * 1024 * 1024  # RFC 7854 sets no limit; a BGP message is at most 65535 octets

MSG_ROUTE_MONITORING = 0
MSG_STATISTICS = 1
MSG_PEER_DOWN = 2
MSG_PEER_UP = 3
MSG_INITIATION = 4
MSG_TERMINATION = 5
MSG_ROUTE_MIRRORING = 6

PEER_GLOBAL = 0
PEER_LOC_RIB = 3
FLAG_V = 0x80
FLAG_L = 0x40
FLAG_A = 0x20
FLAG_O = 0x10

INFO_STRING = 0
INFO_SYS_DESCR = 1
INFO_SYS_NAME = 2

BGP_MARKER = b"\xff" * 16
BGP_OPEN = 1
BGP_UPDATE = 2
ATTR_MP_REACH = 14
ATTR_MP_UNREACH = 15
AFI_IPV4, AFI_IPV6, SAFI_UNICAST = 1, 2, 1
FAMILY_NAMES = {(AFI_IPV4, SAFI_UNICAST): "ipv4 unicast", (AFI_IPV6, SAFI_UNICAST): "ipv6 unicast"}

PEER_DOWN_REASONS = {
    1: "local-notification",
    2: "local-fsm",
    3: "remote-notification",
    4: "remote-close",
    5: "peer-deconfigured",
    6: "loc-rib-deconfigured",
}
TERMINATION_REASONS = {0: "administratively-closed", 1: "unspecified", 2: "out-of-resources",
                       3: "redundant-connection", 4: "permanently-closed"}

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_EXABGP_NEIGHBOR: Mapping[str, Any] = {"capability": {"aigp": False}}
_exabgp_quiet = False


class DecodeError(PeerDataError, ValueError):
    """One message cannot be decoded; the framing around it is intact."""


class FramingError(DecodeError):
    """The byte stream can no longer be split into messages: the connection must be closed."""


def _quiet_exabgp() -> None:
    """ExaBGP's logger needs its daemon's setup; used as a library its log calls would raise. Once."""
    global _exabgp_quiet
    if not _exabgp_quiet:
        exabgp_log.disable()
        _exabgp_quiet = True


@dataclass(frozen=True, slots=True)
class _AttrSummary:
    as_path: tuple[int, ...]
    as_set: tuple[int, ...]
    withdraw: bool  # RFC 7606 treat-as-withdraw


class AttrCache:
    """Path attributes decoded by ExaBGP, keyed by (4-byte ASN mode, raw bytes without MP_REACH/UNREACH).

    Routes share attribute sets (a full table has ~10x fewer distinct sets than prefixes), so most
    UPDATEs skip ExaBGP's attribute parser. Shared by every decoder of a station; cleared when full.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[tuple[bool, bytes], _AttrSummary] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def known(self, asn4: bool, raw: bytes) -> _AttrSummary | None:
        """A cached summary for an attribute section seen before (which then has no MP attribute)."""
        found = self._entries.get((asn4, raw))
        if found is not None:
            self.hits += 1
        return found

    def summary(self, raw: bytes, negotiated: Negotiated) -> _AttrSummary:
        key = (bool(negotiated.asn4), raw)
        found = self._entries.get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        summary = _summarise(Attributes.unpack(raw, Direction.IN, negotiated))
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = summary
        return summary


def _summarise(attributes: Attributes) -> _AttrSummary:
    """The AS path of an ExaBGP attribute set: AS_SEQUENCE members in order, AS_SET members apart."""
    withdraw = Attribute.CODE.INTERNAL_TREAT_AS_WITHDRAW in attributes
    aspath = attributes.get(Attribute.CODE.AS_PATH)
    seq: list[int] = []
    members: set[int] = set()
    for segment in getattr(aspath, "aspath", ()) or ():
        if type(segment) is SEQUENCE:
            seq.extend(int(asn) for asn in segment)
        elif type(segment) is SET:
            members.update(int(asn) for asn in segment)
        # AS_CONFED_SEQUENCE / AS_CONFED_SET: inside the confederation, not inter-domain hops
    return _AttrSummary(tuple(seq), tuple(sorted(members)), withdraw)


def negotiated_from_opens(sent_open: bytes | None, received_open: bytes | None) -> Negotiated:
    """ExaBGP's view of a session from the monitored router's side (sent = its OPEN, received = the
    peer's); without both OPENs, 4-byte ASNs and no add-path (what every current speaker does)."""
    _quiet_exabgp()
    neg = Negotiated(_EXABGP_NEIGHBOR)
    if sent_open is not None and received_open is not None:
        neg.sent(Open.unpack_message(sent_open))
        neg.received(Open.unpack_message(received_open))
    else:
        neg.asn4 = True
        neg.families = [(AFI.ipv4, SAFI.unicast), (AFI.ipv6, SAFI.unicast)]
    return neg


@dataclass(slots=True)
class _Peer:
    """State of one monitored peer, from its Peer Up."""

    address: str
    peer_as: int
    bgp_id: str
    loc_rib: bool
    negotiated: Negotiated
    addpath4: bool = False
    addpath6: bool = False
    negotiated_as2: Negotiated | None = None
    strip_as: int | None = None  # FRR's own AS, prepended to eBGP paths in its Route Monitoring
    held: set[Any] = field(default_factory=set)

    def for_message(self, flags: int) -> Negotiated:
        if not flags & FLAG_A or not self.negotiated.asn4:
            return self.negotiated
        if self.negotiated_as2 is None:
            neg = copy.copy(self.negotiated)
            neg.asn4 = False
            neg.cached_attributes, neg.cached_wire = None, b""
            self.negotiated_as2 = neg
        return self.negotiated_as2


def _ip(raw: bytes, v6: bool) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw) if v6 else socket.inet_ntop(socket.AF_INET, raw[12:])


def read_prefixes(data: bytes, v6: bool, addpath: bool) -> list[tuple[str, int]]:
    """NLRI prefixes (RFC 4271 §4.3, with RFC 7911 path identifiers when `addpath`) as canonical CIDR
    strings (host bits cleared, `ipaddress` spelling) and path ids; DecodeError on a bad length."""
    out: list[tuple[str, int]] = []
    i, end = 0, len(data)
    width = 128 if v6 else 32
    while i < end:
        path_id = 0
        if addpath:
            if i + 5 > end:
                raise DecodeError("NLRI truncated in its path identifier")
            path_id = _U32.unpack_from(data, i)[0]
            i += 4
        plen = data[i]
        if plen > width:
            raise DecodeError(f"prefix length {plen} > {width}")
        nbytes = (plen + 7) >> 3
        i += 1
        if i + nbytes > end:
            raise DecodeError("NLRI truncated in its prefix")
        raw = bytearray(data[i : i + nbytes])
        i += nbytes
        if plen & 7:
            raw[-1] &= (0xFF00 >> (plen & 7)) & 0xFF
        if v6:
            raw += bytes(16 - nbytes)
            if raw[:10] == b"\x00" * 10:  # inet_ntop writes ::a.b.c.d / ::ffff:a.b.c.d, ipaddress does not
                out.append((f"{ipaddress.IPv6Address(bytes(raw))}/{plen}", path_id))
            else:
                out.append((f"{socket.inet_ntop(socket.AF_INET6, raw)}/{plen}", path_id))
        else:
            raw += bytes(4 - nbytes)
            out.append((f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}/{plen}", path_id))
    return out


class BmpDecoder:
    """Incremental decoder of one router's BMP session: `feed` bytes, get events.

    The router is named by `router_name` (the station's configured name for the connection's source
    address) when given, else by the Initiation's sysName if it is a valid name, else by `address`.
    After a framing error `closed` is set and further input is ignored; `close(reason)` gives the final
    RouterDown (once).
    """

    def __init__(self, address: str, router_name: str | None = None, *, attr_cache: AttrCache | None = None,
                 exabgp_only: bool = False) -> None:
        _quiet_exabgp()
        self.address = address
        self.configured_name = router_name
        self.router = router_name or address
        self.sys_name = ""
        self.sys_descr = ""
        self.closed = False
        self.terminated: str | None = None
        self.exabgp_only = exabgp_only
        self.counters: Counter[str] = Counter()
        self._cache = attr_cache if attr_cache is not None else AttrCache()
        self._buf = bytearray()
        self._peers: dict[tuple[int, bytes, bytes], _Peer] = {}
        self._up = False
        self._down = False
        self._frr_no_addpath = False

    # ------------------------------------------------------------------ public

    def feed(self, data: bytes) -> list[BmpEvent]:
        """Decode every complete message in the buffer; keep the partial tail for the next call."""
        if self.closed:
            return []
        buf = self._buf
        buf += data
        events: list[BmpEvent] = []
        pos, size = 0, len(buf)
        while size - pos >= COMMON_HEADER_LEN:
            version = buf[pos]
            length = _U32.unpack_from(buf, pos + 1)[0]
            if version != BMP_VERSION or length < COMMON_HEADER_LEN or length > MAX_MESSAGE_LEN:
                self._lose_framing(events, f"bad common header: version {version}, length {length}")
                del buf[:]
                return events
            if size - pos < length:
                break
            mtype = buf[pos + 5]
            msg = bytes(buf[pos + COMMON_HEADER_LEN : pos + length])
            pos += length
            self.counters["messages"] += 1
            try:
                self._dispatch(mtype, msg, events)
            except FramingError as exc:
                self._lose_framing(events, str(exc))
                del buf[:]
                return events
            except Exception as exc:  # any decode failure is the peer's data, never ours to raise
                self._malformed(events, f"message type {mtype}: {type(exc).__name__}: {exc}")
        if pos:
            del buf[:pos]
        return events

    def close(self, reason: str) -> list[BmpEvent]:
        """The session ended: one RouterDown (with the Termination's reason when one came), then nothing."""
        if self._down:
            return []
        self._down = True
        self.closed = True
        return [RouterDown(self.router, self.terminated or reason)]

    def peers_up(self) -> int:
        return len(self._peers)

    def routes_held(self) -> int:
        """Pre-policy and Loc-RIB (prefix, path id) pairs currently announced, over all peers."""
        return sum(len(p.held) for p in self._peers.values())

    # ------------------------------------------------------------------ messages

    def _dispatch(self, mtype: int, msg: bytes, events: list[BmpEvent]) -> None:
        if mtype == MSG_ROUTE_MONITORING:
            self._ensure_up(events)
            self._route_monitoring(msg, events)
        elif mtype == MSG_INITIATION:
            self._initiation(msg, events)
        elif mtype == MSG_PEER_UP:
            self._ensure_up(events)
            self._peer_up(msg, events)
        elif mtype == MSG_PEER_DOWN:
            self._ensure_up(events)
            self._peer_down(msg, events)
        elif mtype == MSG_TERMINATION:
            self._termination(msg)
        elif mtype in (MSG_STATISTICS, MSG_ROUTE_MIRRORING):
            self.counters["skipped_" + ("statistics" if mtype == MSG_STATISTICS else "mirroring")] += 1
        else:
            raise DecodeError(f"unknown message type {mtype}")

    def _ensure_up(self, events: list[BmpEvent]) -> None:
        """RFC 7854 §4.3 makes Initiation the first message; a router that skips it still gets a RouterUp."""
        if not self._up:
            self._up = True
            self.counters["no_initiation"] += 1
            events.append(RouterUp(self.router, self.address, "", ""))

    def _initiation(self, msg: bytes, events: list[BmpEvent]) -> None:
        info = _tlvs(msg)
        self.sys_descr = _text(info.get(INFO_SYS_DESCR, b""))
        self.sys_name = _text(info.get(INFO_SYS_NAME, b""))
        self._frr_no_addpath = self.sys_descr.startswith("FRRouting")
        if not self._up:
            self.router = self.configured_name or self._checked_sys_name() or self.address
            self._up = True
            log.info("event=bmp_router_up router=%s address=%s sys_descr=%r", self.router, self.address,
                     self.sys_descr)
            events.append(RouterUp(self.router, self.address, self.sys_name, self.sys_descr))

    def _checked_sys_name(self) -> str:
        """The sysName as the router's name when it is a valid name (appliance.names); it comes off the
        wire and names sources and log fields, so anything else is refused (named by address instead)."""
        problem = router_name_problem(self.sys_name) if self.sys_name else None
        if problem is not None:
            log.warning("event=bmp_sys_name_refused address=%s error=%r", self.address, problem)
            return ""
        return self.sys_name

    def _termination(self, msg: bytes) -> None:
        info = _tlvs(msg)
        reason = "terminated"
        if 1 in info and len(info[1]) >= 2:
            code = _U16.unpack_from(info[1])[0]
            reason = "terminated: " + TERMINATION_REASONS.get(code, f"reason {code}")
        if INFO_STRING in info:
            reason += f" ({_text(info[INFO_STRING])})"
        self.terminated = reason

    def _peer_header(self, msg: bytes) -> tuple[int, int, tuple[int, bytes, bytes]]:
        if len(msg) < PER_PEER_HEADER_LEN:
            raise DecodeError(f"per-peer header truncated ({len(msg)} octets)")
        ptype, flags = msg[0], msg[1]
        return ptype, flags, (ptype, msg[2:10], msg[10:26])

    def _peer_up(self, msg: bytes, events: list[BmpEvent]) -> None:
        ptype, flags, key = self._peer_header(msg)
        if ptype not in (PEER_GLOBAL, PEER_LOC_RIB):
            self.counters["skipped_peer_type"] += 1
            return
        v6 = bool(flags & FLAG_V) and ptype != PEER_LOC_RIB
        address = _ip(msg[10:26], v6)
        peer_as = _U32.unpack_from(msg, 26)[0]
        bgp_id = socket.inet_ntop(socket.AF_INET, msg[30:34])
        pos = PER_PEER_HEADER_LEN + 20  # local address (16), local port, remote port
        sent, pos = _bgp_message(msg, pos, "sent OPEN")
        received, pos = _bgp_message(msg, pos, "received OPEN")
        sent_body = sent[BGP_HEADER_LEN:] if len(sent) > BGP_HEADER_LEN and sent[18] == BGP_OPEN else None
        recv_body = received[BGP_HEADER_LEN:] if len(received) > BGP_HEADER_LEN and received[18] == BGP_OPEN \
            else None
        if sent_body is None or recv_body is None:
            self.counters["peer_up_without_open"] += 1
        neg = negotiated_from_opens(sent_body, recv_body)
        peer = _Peer(address, peer_as, bgp_id, ptype == PEER_LOC_RIB, neg)
        if not self._frr_no_addpath:
            peer.addpath4 = bool(neg.addpath.receive(AFI.ipv4, SAFI.unicast))
            peer.addpath6 = bool(neg.addpath.receive(AFI.ipv6, SAFI.unicast))
        else:
            neg.addpath = type(neg.addpath)()  # FRR sends no path ids (module docstring)
            if sent_body is not None and neg.sent_open is not None:
                local_as = int(neg.sent_open.capabilities.get(Capability.CODE.FOUR_BYTES_ASN,
                                                              neg.sent_open.asn))
                if local_as != peer_as and ptype == PEER_GLOBAL:
                    peer.strip_as = local_as
        self._peers[key] = peer
        log.info("event=bmp_peer_up router=%s peer=%s peer_as=%d asn4=%s addpath=%s loc_rib=%s", self.router,
                 address, peer_as, bool(neg.asn4), peer.addpath4 or peer.addpath6, peer.loc_rib)
        events.append(PeerUp(self.router, address, peer_as, bgp_id, peer.loc_rib))

    def _peer_down(self, msg: bytes, events: list[BmpEvent]) -> None:
        ptype, flags, key = self._peer_header(msg)
        if ptype not in (PEER_GLOBAL, PEER_LOC_RIB):
            self.counters["skipped_peer_type"] += 1
            return
        address = _ip(msg[10:26], bool(flags & FLAG_V) and ptype != PEER_LOC_RIB)
        reason = "unknown"
        if len(msg) > PER_PEER_HEADER_LEN:
            code = msg[PER_PEER_HEADER_LEN]
            data = msg[PER_PEER_HEADER_LEN + 1 :]
            reason = PEER_DOWN_REASONS.get(code, f"reason {code}")
            if code in (1, 3) and len(data) >= BGP_HEADER_LEN + 2:
                reason += f" {data[BGP_HEADER_LEN]}/{data[BGP_HEADER_LEN + 1]}"
            elif code == 2 and len(data) >= 2:
                reason += f" fsm-event {_U16.unpack_from(data)[0]}"
        self._peers.pop(key, None)
        log.info("event=bmp_peer_down router=%s peer=%s reason=%r", self.router, address, reason)
        events.append(PeerDown(self.router, address, reason))

    def _route_monitoring(self, msg: bytes, events: list[BmpEvent]) -> None:
        if len(msg) < PER_PEER_HEADER_LEN + BGP_HEADER_LEN:
            raise DecodeError(f"route monitoring truncated ({len(msg)} octets)")
        ptype, flags = msg[0], msg[1]
        if ptype != PEER_GLOBAL and ptype != PEER_LOC_RIB:
            self.counters["skipped_peer_type"] += 1
            return
        if ptype == PEER_GLOBAL and flags & FLAG_O:
            self.counters["skipped_adj_rib_out"] += 1
            return
        key = (ptype, msg[2:10], msg[10:26])
        peer = self._peers.get(key)
        if peer is None:
            peer = self._unknown_peer(key, msg)
        if msg[PER_PEER_HEADER_LEN : PER_PEER_HEADER_LEN + 16] != BGP_MARKER:
            raise DecodeError("BGP message without marker")
        blen = _U16.unpack_from(msg, PER_PEER_HEADER_LEN + 16)[0]
        if msg[PER_PEER_HEADER_LEN + 18] != BGP_UPDATE or blen < BGP_HEADER_LEN + 4 \
                or PER_PEER_HEADER_LEN + blen > len(msg):
            raise DecodeError(f"not a BGP UPDATE (type {msg[PER_PEER_HEADER_LEN + 18]}, length {blen})")
        body = msg[PER_PEER_HEADER_LEN + BGP_HEADER_LEN : PER_PEER_HEADER_LEN + blen]
        post_policy = ptype == PEER_GLOBAL and bool(flags & FLAG_L)
        neg = peer.for_message(flags)
        if self.exabgp_only:
            result = self._update_exabgp(body, neg, peer)
        else:
            result = self._update(body, neg, peer)
        if isinstance(result, str):
            if result:
                events.append(EndOfRib(self.router, peer.address, result))
            return
        announced, withdrawn = result
        if not post_policy:
            held = peer.held
            for prefix, path_id in withdrawn:
                held.discard(prefix if not path_id else (prefix, path_id))
            for route in announced:
                held.add(route.prefix if not route.path_id else (route.prefix, route.path_id))
        self.counters["routes"] += len(announced)
        events.append(Routes(self.router, peer.address, peer.peer_as, announced, withdrawn, post_policy,
                             peer.loc_rib))

    def _unknown_peer(self, key: tuple[int, bytes, bytes], msg: bytes) -> _Peer:
        """Route Monitoring without a Peer Up: RFC 9069 Loc-RIB as FRR sends it (the per-peer header
        names the path's source peer), or a router that skipped Peer Up. Reuse that peer's global-instance
        state if there is one, else defaults; remembered until the next Peer Down."""
        self.counters["no_peer_up"] += 1
        ptype, flags = key[0], msg[1]
        peers = self._peers
        base = peers.get((PEER_GLOBAL, key[1], key[2])) or peers.get((PEER_GLOBAL, bytes(8), key[2]))
        v6 = bool(flags & FLAG_V) and ptype != PEER_LOC_RIB
        address = _ip(key[2], v6)
        peer_as = _U32.unpack_from(msg, 26)[0]
        if base is not None:
            peer = _Peer(address, peer_as, base.bgp_id, ptype == PEER_LOC_RIB, base.negotiated, base.addpath4,
                         base.addpath6, strip_as=base.strip_as)
        else:
            bgp_id = socket.inet_ntop(socket.AF_INET, msg[30:34])
            peer = _Peer(address, peer_as, bgp_id, ptype == PEER_LOC_RIB, negotiated_from_opens(None, None))
        self._peers[key] = peer
        return peer

    # ------------------------------------------------------------------ UPDATE

    def _update(self, body: bytes, neg: Negotiated, peer: _Peer) -> str | tuple[tuple[Route, ...],
                                                                               tuple[tuple[str, int], ...]]:
        """An UPDATE body as (announced, withdrawn), or the End-of-RIB family name ("" if not unicast)."""
        size = len(body)
        wlen = _U16.unpack_from(body, 0)[0]
        if 4 + wlen > size:
            raise DecodeError("withdrawn routes length past the UPDATE")
        alen = _U16.unpack_from(body, 2 + wlen)[0]
        astart = 4 + wlen
        aend = astart + alen
        if aend > size:
            raise DecodeError("path attribute length past the UPDATE")
        if wlen == 0 and alen == 0 and aend == size:
            return "ipv4 unicast"
        withdrawn = read_prefixes(body[2 : 2 + wlen], False, peer.addpath4) if wlen else []
        nlri = read_prefixes(body[aend:], False, peer.addpath4) if aend < size else []
        # split MP_REACH / MP_UNREACH off the attribute section: they carry NLRI, the rest is cacheable.
        # A section already in the cache has none (it is its own key): no walk needed.
        reach = unreach = None
        cuts: list[tuple[int, int]] = []
        known = self._cache.known(bool(neg.asn4), body[astart:aend]) if alen else None
        i = aend if known is not None else astart
        while i < aend:
            if i + 3 > aend:
                raise DecodeError("path attribute header truncated")
            flag, code = body[i], body[i + 1]
            if flag & 0x10:
                if i + 4 > aend:
                    raise DecodeError("path attribute header truncated")
                hlen, vlen = 4, _U16.unpack_from(body, i + 2)[0]
            else:
                hlen, vlen = 3, body[i + 2]
            end = i + hlen + vlen
            if end > aend:
                raise DecodeError(f"path attribute {code} length past the attribute section")
            if code == ATTR_MP_REACH:
                reach = body[i + hlen : end]
                cuts.append((i, end))
            elif code == ATTR_MP_UNREACH:
                unreach = body[i + hlen : end]
                cuts.append((i, end))
            i = end
        if cuts:
            pieces, last = [], astart
            for lo, hi in cuts:
                pieces.append(body[last:lo])
                last = hi
            pieces.append(body[last:aend])
            rest = b"".join(pieces)
        else:
            rest = body[astart:aend]
        if unreach is not None and reach is None and not nlri and not withdrawn and not rest \
                and len(unreach) == 3:
            family = FAMILY_NAMES.get((_U16.unpack_from(unreach)[0], unreach[2]))
            if family is None:
                self.counters["skipped_family"] += 1
            return family or ""
        if unreach is not None:
            withdrawn += self._mp_prefixes(unreach, 3, peer)
        summary = known
        if summary is None and (nlri or reach is not None):
            summary = self._cache.summary(rest, neg)
        if reach is not None:
            if len(reach) < 5 or 5 + reach[3] > len(reach):
                raise DecodeError("MP_REACH_NLRI truncated")
            nlri += self._mp_prefixes(reach, 5 + reach[3], peer)
        announced: tuple[Route, ...] = ()
        if nlri and summary is not None:
            if summary.withdraw:
                self.counters["treat_as_withdraw"] += 1
                withdrawn += nlri
            else:
                as_path, as_set = summary.as_path, summary.as_set
                if peer.strip_as is not None and as_path and as_path[0] == peer.strip_as:
                    as_path = as_path[1:]
                announced = tuple([Route(p, as_path, as_set, pid) for p, pid in nlri])
        return announced, tuple(withdrawn)

    def _mp_prefixes(self, value: bytes, start: int, peer: _Peer) -> list[tuple[str, int]]:
        if len(value) < 3:
            raise DecodeError("MP attribute truncated")
        afi, safi = _U16.unpack_from(value)[0], value[2]
        if safi != SAFI_UNICAST or afi not in (AFI_IPV4, AFI_IPV6):
            self.counters["skipped_family"] += 1
            return []
        v6 = afi == AFI_IPV6
        return read_prefixes(value[start:], v6, peer.addpath6 if v6 else peer.addpath4)

    def _update_exabgp(self, body: bytes, neg: Negotiated, peer: _Peer) -> str | tuple[
            tuple[Route, ...], tuple[tuple[str, int], ...]]:
        """The reference path: the whole UPDATE through ExaBGP's Update.unpack_message."""
        update = Update.unpack_message(body, Direction.IN, neg)
        if isinstance(update, EOR):
            family = FAMILY_NAMES.get((int(update.nlris[0].afi), int(update.nlris[0].safi)))
            return family or ""
        summary = _summarise(update.attributes)
        as_path = summary.as_path
        if peer.strip_as is not None and as_path and as_path[0] == peer.strip_as:
            as_path = as_path[1:]
        announced: list[Route] = []
        withdrawn: list[tuple[str, int]] = []
        for nlri in update.nlris:
            if (int(nlri.afi), int(nlri.safi)) not in FAMILY_NAMES:
                self.counters["skipped_family"] += 1
                continue
            prefix = str(ipaddress.ip_network(nlri.cidr.prefix(), strict=False))
            info = getattr(nlri.path_info, "path_info", b"") or b""
            path_id = int.from_bytes(info, "big") if len(info) == 4 else 0
            if int(nlri.action) == 1 and not summary.withdraw:  # Action.ANNOUNCE
                announced.append(Route(prefix, as_path, summary.as_set, path_id))
            else:
                withdrawn.append((prefix, path_id))
        return tuple(announced), tuple(withdrawn)

    # ------------------------------------------------------------------ errors

    def _malformed(self, events: list[BmpEvent], detail: str) -> None:
        self.counters["malformed"] += 1
        log.warning("event=bmp_malformed router=%s address=%s detail=%r", self.router, self.address, detail)
        events.append(Malformed(self.router, self.address, detail))

    def _lose_framing(self, events: list[BmpEvent], detail: str) -> None:
        self._malformed(events, f"framing lost: {detail}")
        self.closed = True


def _bgp_message(msg: bytes, pos: int, what: str) -> tuple[bytes, int]:
    if pos + BGP_HEADER_LEN > len(msg) or msg[pos : pos + 16] != BGP_MARKER:
        raise DecodeError(f"peer up: {what} missing")
    length = _U16.unpack_from(msg, pos + 16)[0]
    if length < BGP_HEADER_LEN or pos + length > len(msg):
        raise DecodeError(f"peer up: {what} length {length}")
    return msg[pos : pos + length], pos + length


def _tlvs(msg: bytes) -> dict[int, bytes]:
    """Information TLVs (type 2, length 2, value); the first of each type wins."""
    out: dict[int, bytes] = {}
    i = 0
    while i + 4 <= len(msg):
        ttype, tlen = _U16.unpack_from(msg, i)[0], _U16.unpack_from(msg, i + 2)[0]
        if i + 4 + tlen > len(msg):
            raise DecodeError(f"information TLV {ttype} truncated")
        out.setdefault(ttype, msg[i + 4 : i + 4 + tlen])
        i += 4 + tlen
    return out


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")
