"""RTR PDU codec (pure): RFC 6810 (v0), RFC 8210 (v1), draft-ietf-sidrops-8210bis (v2, ASPA).

Owns the wire layouts and code points; no sockets, no clocks, no session state. The bulk path for
Prefix and ASPA PDUs lives in rpki/rtr/ingest.py; this module decodes and encodes single PDUs.

Common header (all versions)::

     0          8          16         24        31
    +----------+----------+---------------------+
    | version  | PDU type |  session id / zero  |
    +----------+----------+---------------------+
    |                  length                   |
    +-------------------------------------------+

ASPA (type 11) comes in two layouts that a client meets in the field:

    current 8210bis (rpki-rs, rtrlib master):
      version type flags(1) zero(1) | length | customer AS | provider AS * n      (length 12 + 4n)
    draft-8210bis-10, sent by StayRTR 0.5.1:
      version type zero(2) | length | flags(1) AFI(1) provider-count(2) | customer AS | providers
                                                                           (length 16 + 4 * count)

`aspa_layout` tells them apart by structure (see its docstring).
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass

from appliance.errors import PeerDataError

HEADER = struct.Struct(">BBHI")
U32 = struct.Struct(">I")
MAX_PDU_LEN = 1 << 20  # far above any legal PDU (an ASPA with 250k providers); guards corrupt lengths
PREFIX_LEN = {4: 20, 6: 32}  # PDU type -> the only legal length (RFC 8210 sections 5.6, 5.7)
ROUTER_KEY_MIN_LEN = 33  # header 8, SKI 20, AS 4, and a Subject Public Key Info of at least one byte
SUPPORTED_VERSIONS = (0, 1, 2)


class PduType(enum.IntEnum):
    SERIAL_NOTIFY = 0
    SERIAL_QUERY = 1
    RESET_QUERY = 2
    CACHE_RESPONSE = 3
    IPV4_PREFIX = 4
    IPV6_PREFIX = 6
    END_OF_DATA = 7
    CACHE_RESET = 8
    ROUTER_KEY = 9
    ERROR_REPORT = 10
    ASPA = 11


class ErrorCode(enum.IntEnum):
    """RFC 8210 section 12; 9 from draft-ietf-sidrops-8210bis. Only NO_DATA_AVAILABLE is not fatal."""

    CORRUPT_DATA = 0
    INTERNAL_ERROR = 1
    NO_DATA_AVAILABLE = 2
    INVALID_REQUEST = 3
    UNSUPPORTED_PROTOCOL_VERSION = 4
    UNSUPPORTED_PDU_TYPE = 5
    WITHDRAWAL_OF_UNKNOWN_RECORD = 6
    DUPLICATE_ANNOUNCEMENT = 7
    UNEXPECTED_PROTOCOL_VERSION = 8
    ASPA_PROVIDER_LIST_ERROR = 9


class AspaLayout(enum.StrEnum):
    CURRENT = "8210bis"
    LEGACY = "8210bis-10"


class PduError(PeerDataError):
    """A PDU the client must refuse; `code` and `pdu` go into the Error Report it sends."""

    def __init__(self, code: ErrorCode, text: str, pdu: bytes = b"") -> None:
        super().__init__(f"{code.name}: {text}")
        self.code = code
        self.text = text
        self.pdu = pdu


# --- PDU records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SerialNotify:
    version: int
    session_id: int
    serial: int


@dataclass(frozen=True, slots=True)
class SerialQuery:
    version: int
    session_id: int
    serial: int


@dataclass(frozen=True, slots=True)
class ResetQuery:
    version: int


@dataclass(frozen=True, slots=True)
class CacheResponse:
    version: int
    session_id: int


@dataclass(frozen=True, slots=True)
class Prefix:
    """IPv4 or IPv6 Prefix PDU; `prefix` is the address as sent (the codec keeps host bits, as rpki-rs
    does and the shared vectors expect). A session refuses them: rpki/rtr/ingest.py, where a PDU becomes a
    VRP, answers host bits past `prefix_len` with CORRUPT_DATA, since masking a garbled address would
    make a VRP nobody signed."""

    version: int
    announce: bool
    prefix: str
    prefix_len: int
    max_len: int
    asn: int

    @property
    def family(self) -> int:
        return 6 if ":" in self.prefix else 4


@dataclass(frozen=True, slots=True)
class EndOfData:
    """`refresh`, `retry`, `expire` are None in v0 (RFC 6810 has no timers in End of Data)."""

    version: int
    session_id: int
    serial: int
    refresh: int | None = None
    retry: int | None = None
    expire: int | None = None


@dataclass(frozen=True, slots=True)
class CacheReset:
    version: int


@dataclass(frozen=True, slots=True)
class RouterKey:
    version: int
    announce: bool
    ski: bytes
    asn: int
    spki: bytes


@dataclass(frozen=True, slots=True)
class ErrorReport:
    version: int
    code: int
    pdu: bytes
    text: str


@dataclass(frozen=True, slots=True)
class AspaPdu:
    """`afi` is set only for the legacy layout (0 IPv4, 1 IPv6)."""

    version: int
    announce: bool
    customer: int
    providers: tuple[int, ...]
    layout: AspaLayout = AspaLayout.CURRENT
    afi: int | None = None


Pdu = (
    SerialNotify | SerialQuery | ResetQuery | CacheResponse | Prefix | EndOfData | CacheReset | RouterKey
    | ErrorReport | AspaPdu
)


# --- framing -----------------------------------------------------------------------------------------


def frame_length(buf: bytes, offset: int = 0) -> int | None:
    """Length of the PDU starting at `offset`, or None if its header is not complete yet."""
    if len(buf) - offset < 8:
        return None
    (length,) = U32.unpack_from(buf, offset + 4)
    if length < 8 or length > MAX_PDU_LEN:
        raise PduError(ErrorCode.CORRUPT_DATA, f"bad PDU length {length}", bytes(buf[offset : offset + 8]))
    return int(length)


# --- decode ------------------------------------------------------------------------------------------


def decode(pdu: bytes) -> Pdu:
    """Decode exactly one whole PDU; PduError on anything malformed."""
    if len(pdu) < 8:
        raise PduError(ErrorCode.CORRUPT_DATA, f"truncated header ({len(pdu)} bytes)", pdu)
    version, ptype, field, length = HEADER.unpack_from(pdu)
    if length != len(pdu):
        raise PduError(ErrorCode.CORRUPT_DATA, f"length field {length} but {len(pdu)} bytes", pdu)
    if version not in SUPPORTED_VERSIONS:
        raise PduError(ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, f"version {version}", pdu)
    decoder = _DECODERS.get(ptype)
    if decoder is None:
        raise PduError(ErrorCode.UNSUPPORTED_PDU_TYPE, f"PDU type {ptype}", pdu)
    if ptype in _MIN_VERSION and version < _MIN_VERSION[ptype]:
        raise PduError(ErrorCode.UNSUPPORTED_PDU_TYPE, f"PDU type {ptype} in version {version}", pdu)
    return decoder(pdu, version, field, length)


def has_host_bits(address: bytes, prefix_len: int) -> bool:
    """True if `address` (4 or 16 bytes) has bits set past `prefix_len`."""
    host_bits = len(address) * 8 - prefix_len
    return host_bits > 0 and int.from_bytes(address, "big") & ((1 << host_bits) - 1) != 0


def _need(pdu: bytes, length: int, want: int) -> None:
    if length != want:
        raise PduError(ErrorCode.CORRUPT_DATA, f"PDU type {pdu[1]} length {length}, want {want}", pdu)


def _serial(pdu: bytes, version: int, field: int, length: int) -> Pdu:
    _need(pdu, length, 12)
    (serial,) = U32.unpack_from(pdu, 8)
    cls = SerialNotify if pdu[1] == PduType.SERIAL_NOTIFY else SerialQuery
    return cls(version, field, serial)


def _reset_query(pdu: bytes, version: int, field: int, length: int) -> Pdu:
    _need(pdu, length, 8)
    return ResetQuery(version)


def _cache_response(pdu: bytes, version: int, field: int, length: int) -> Pdu:
    _need(pdu, length, 8)
    return CacheResponse(version, field)


def _prefix(pdu: bytes, version: int, field: int, length: int) -> Pdu:
    v6 = pdu[1] == PduType.IPV6_PREFIX
    _need(pdu, length, PREFIX_LEN[pdu[1]])
    flags, plen, max_len = pdu[8], pdu[9], pdu[10]
    addr_bytes = pdu[12 : length - 4]
    width = 128 if v6 else 32
    if not plen <= max_len <= width:
        raise PduError(ErrorCode.CORRUPT_DATA, f"prefix length {plen} max length {max_len}", pdu)
    addr = ipaddress.IPv6Address(addr_bytes) if v6 else ipaddress.IPv4Address(addr_bytes)
    (asn,) = U32.unpack_from(pdu, length - 4)
    return Prefix(version, bool(flags & 1), str(addr), plen, max_len, asn)


def _end_of_data(pdu: bytes, version: int, field: int, length: int) -> Pdu:
    if version == 0:
        _need(pdu, length, 12)
        return EndOfData(version, field, U32.unpack_from(pdu, 8)[0])
    _need(pdu, length, 24)
    serial, refresh, retry, expire = struct.unpack_from(">IIII", pdu, 8)
    return EndOfData(version, field, serial, refresh, retry, expire)


def _cache_reset(pdu: bytes, version: int, field: int, length: int) -> Pdu:
    _need(pdu, length, 8)
    return CacheReset(version)


def _router_key(pdu: bytes, version: int, field: int, length: int) -> Pdu:
    """RFC 8210 section 5.10: SKI (20), AS (4), then the SPKI, which is never empty."""
    if length < ROUTER_KEY_MIN_LEN:
        raise PduError(ErrorCode.CORRUPT_DATA, f"Router Key length {length}, want >= {ROUTER_KEY_MIN_LEN}",
                       pdu)
    (asn,) = U32.unpack_from(pdu, 28)
    return RouterKey(version, bool(pdu[2] & 1), pdu[8:28], asn, pdu[32:length])


def _error_report(pdu: bytes, version: int, field: int, length: int) -> Pdu:
    if length < 16:
        raise PduError(ErrorCode.CORRUPT_DATA, f"Error Report length {length}", pdu)
    (inner_len,) = U32.unpack_from(pdu, 8)
    text_at = 12 + inner_len
    if text_at + 4 > length:
        raise PduError(ErrorCode.CORRUPT_DATA, f"Error Report inner PDU length {inner_len}", pdu)
    (text_len,) = U32.unpack_from(pdu, text_at)
    if text_at + 4 + text_len != length:
        raise PduError(ErrorCode.CORRUPT_DATA, f"Error Report text length {text_len}", pdu)
    text = pdu[text_at + 4 : length].decode("utf-8", "replace")
    return ErrorReport(version, field, pdu[12:text_at], text)


def aspa_layout(pdu: bytes, hint: AspaLayout | None = None) -> AspaLayout:
    """Which ASPA layout `pdu` uses, decided by structure.

    The legacy layout always has bytes 2-3 zero, flags and AFI in {0, 1} and length == 16 + 4 * count.
    The current layout has flags in byte 2 (an announcement has it set) and length == 12 + 4 * n.
    So a current announcement (byte 2 = 1) and a provider-less current withdrawal (length 12) are never
    legacy. What is left is a current withdrawal that still lists providers and whose customer AS
    happens to satisfy the legacy equations: then the layout seen earlier on the session (`hint`)
    decides, else the legacy one (StayRTR 0.5.1 is the only sender of such structures seen here).
    """
    length = len(pdu)
    legacy = (
        length >= 16
        and pdu[2] == 0
        and pdu[3] == 0
        and pdu[8] <= 1
        and pdu[9] <= 1
        and length == 16 + 4 * int.from_bytes(pdu[10:12], "big")
    )
    current = length >= 12 and pdu[3] == 0 and (length - 12) % 4 == 0
    if legacy and current:
        return hint or AspaLayout.LEGACY
    if legacy:
        return AspaLayout.LEGACY
    return AspaLayout.CURRENT


def decode_aspa(pdu: bytes, hint: AspaLayout | None = None) -> AspaPdu:
    """Decode an ASPA PDU of either layout (see module docstring)."""
    version, length = pdu[0], len(pdu)
    if aspa_layout(pdu, hint) is AspaLayout.LEGACY:
        count = int.from_bytes(pdu[10:12], "big")
        customer = U32.unpack_from(pdu, 12)[0]
        providers = struct.unpack_from(f">{count}I", pdu, 16)
        return AspaPdu(version, bool(pdu[8] & 1), customer, providers, AspaLayout.LEGACY, pdu[9])
    if length < 12 or (length - 12) % 4 or pdu[3] != 0:
        raise PduError(ErrorCode.CORRUPT_DATA, f"ASPA length {length}", pdu)
    customer = U32.unpack_from(pdu, 8)[0]
    providers = struct.unpack_from(f">{(length - 12) // 4}I", pdu, 12)
    return AspaPdu(version, bool(pdu[2] & 1), customer, providers)


def _aspa(pdu: bytes, version: int, field: int, length: int) -> Pdu:
    return decode_aspa(pdu)


_DECODERS = {
    PduType.SERIAL_NOTIFY: _serial,
    PduType.SERIAL_QUERY: _serial,
    PduType.RESET_QUERY: _reset_query,
    PduType.CACHE_RESPONSE: _cache_response,
    PduType.IPV4_PREFIX: _prefix,
    PduType.IPV6_PREFIX: _prefix,
    PduType.END_OF_DATA: _end_of_data,
    PduType.CACHE_RESET: _cache_reset,
    PduType.ROUTER_KEY: _router_key,
    PduType.ERROR_REPORT: _error_report,
    PduType.ASPA: _aspa,
}
_MIN_VERSION = {PduType.ROUTER_KEY: 1, PduType.ASPA: 2}


# --- encode ------------------------------------------------------------------------------------------


def encode(pdu: Pdu) -> bytes:
    """Wire bytes of one PDU (the inverse of `decode`)."""
    match pdu:
        case SerialNotify() | SerialQuery():
            ptype = PduType.SERIAL_NOTIFY if isinstance(pdu, SerialNotify) else PduType.SERIAL_QUERY
            return HEADER.pack(pdu.version, ptype, pdu.session_id, 12) + U32.pack(pdu.serial)
        case ResetQuery():
            return HEADER.pack(pdu.version, PduType.RESET_QUERY, 0, 8)
        case CacheResponse():
            return HEADER.pack(pdu.version, PduType.CACHE_RESPONSE, pdu.session_id, 8)
        case CacheReset():
            return HEADER.pack(pdu.version, PduType.CACHE_RESET, 0, 8)
        case Prefix():
            addr = ipaddress.ip_address(pdu.prefix).packed
            ptype = PduType.IPV6_PREFIX if len(addr) == 16 else PduType.IPV4_PREFIX
            body = bytes((int(pdu.announce), pdu.prefix_len, pdu.max_len, 0)) + addr + U32.pack(pdu.asn)
            return HEADER.pack(pdu.version, ptype, 0, 8 + len(body)) + body
        case EndOfData():
            if pdu.version == 0:
                return HEADER.pack(0, PduType.END_OF_DATA, pdu.session_id, 12) + U32.pack(pdu.serial)
            timers = struct.pack(">IIII", pdu.serial, pdu.refresh or 0, pdu.retry or 0, pdu.expire or 0)
            return HEADER.pack(pdu.version, PduType.END_OF_DATA, pdu.session_id, 24) + timers
        case RouterKey():
            body = pdu.ski + U32.pack(pdu.asn) + pdu.spki
            head = struct.pack(">BBBBI", pdu.version, PduType.ROUTER_KEY, int(pdu.announce), 0, 8 + len(body))
            return head + body
        case ErrorReport():
            text = pdu.text.encode()
            body = U32.pack(len(pdu.pdu)) + pdu.pdu + U32.pack(len(text)) + text
            return HEADER.pack(pdu.version, PduType.ERROR_REPORT, pdu.code, 8 + len(body)) + body
        case AspaPdu():
            return _encode_aspa(pdu)
    raise TypeError(f"not a PDU: {pdu!r}")


def _encode_aspa(pdu: AspaPdu) -> bytes:
    providers = struct.pack(f">{len(pdu.providers)}I", *pdu.providers)
    if pdu.layout is AspaLayout.LEGACY:
        length = 16 + len(providers)
        head = HEADER.pack(pdu.version, PduType.ASPA, 0, length)
        body = struct.pack(">BBHI", int(pdu.announce), pdu.afi or 0, len(pdu.providers), pdu.customer)
        return head + body + providers
    length = 12 + len(providers)
    head = struct.pack(">BBBBII", pdu.version, PduType.ASPA, int(pdu.announce), 0, length, pdu.customer)
    return head + providers


def error_report(version: int, code: ErrorCode, text: str, pdu: bytes = b"") -> bytes:
    """An Error Report to send, carrying the erroneous PDU verbatim (RFC 8210 section 5.11)."""
    return encode(ErrorReport(version, int(code), pdu, text))
