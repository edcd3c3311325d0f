"""RTR PDU codec: shared vectors both ways (rpki-rs, Scapy captures), both ASPA layouts, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpki.rtr import pdu as P
from rpki.rtr.ingest import Pending, ingest

# Captured from StayRTR 0.5.1 (-protocol 2) here: draft-8210bis-10 layout, flags 1, AFI 0 then 1.
STAYRTR_051_ASPA_V4 = "020b000000000018010000020000fde90000fdf20000fdfc"
STAYRTR_051_ASPA_V6 = "020b000000000018010100020000fde90000fdf20000fdfc"


def _vectors(shared_data: Path) -> dict[str, Any]:
    return dict(json.loads((shared_data / "rtr/rtr-pdu-vectors.json").read_text()))


def _expected(vec: dict[str, Any]) -> P.Pdu:
    f, v = vec["fields"], vec["version"]
    match vec["type"]:
        case 0:
            return P.SerialNotify(v, f["session_id"], f["serial"])
        case 1:
            return P.SerialQuery(v, f["session_id"], f["serial"])
        case 2:
            return P.ResetQuery(v)
        case 3:
            return P.CacheResponse(v, f["session_id"])
        case 4 | 6:
            return P.Prefix(v, f["announce"], f["prefix"], f["prefix_len"], f["max_len"], f["asn"])
        case 7:
            timers = (f.get("refresh"), f.get("retry"), f.get("expire"))
            return P.EndOfData(v, f["session_id"], f["serial"], *timers)
        case 8:
            return P.CacheReset(v)
        case 9:
            return P.RouterKey(v, True, bytes.fromhex(f["ski"]), f["asn"], bytes.fromhex(f["spki"]))
        case 11:
            return P.AspaPdu(v, f["announce"], f["customer_asn"], tuple(f["provider_asns"]))
    raise AssertionError(vec)


def test_shared_vectors_decode_and_encode_both_ways(shared_data: Path) -> None:
    vectors = _vectors(shared_data)["pdu_vectors"]
    assert len(vectors) == 13
    for vec in vectors:
        raw = bytes.fromhex(vec["hex"])
        want = _expected(vec)
        assert P.decode(raw) == want, vec["pdu"]
        assert P.encode(want) == raw, vec["pdu"]


def test_real_captured_frames_decode(shared_data: Path) -> None:
    captured = _vectors(shared_data)["captured_frames"]
    frames = {f["test"]: bytes.fromhex(f["rtr_payload_hex"]) for f in captured}
    # The Cache Response segment is followed by the first data PDU; frame them as a client would.
    payload = frames["RTR IPv4 Prefix"]
    first = P.frame_length(payload)
    assert first == 8 and P.decode(payload[:8]) == P.CacheResponse(0, 4911)
    assert P.decode(payload[8:]) == P.Prefix(0, True, "89.185.224.0", 19, 19, 24971)
    v6 = frames["RTR IPv6 Prefix"]
    assert P.decode(v6[8:]) == P.Prefix(0, True, "2a03:cd80::", 32, 32, 16354)
    assert P.decode(frames["RTR Serial Query"]) == P.SerialQuery(0, 4911, 33151)
    eod0 = frames["RTR End of Data version 0"]
    assert P.decode(eod0[8:]) == P.EndOfData(0, 12345, 17)
    eod1 = frames["RTR End of Data version 1"]
    assert P.decode(eod1[8:]) == P.EndOfData(1, 12345, 17, 500, 200, 1800)
    assert P.decode(frames["RTR Error Report"]) == P.ErrorReport(0, 1, b"", "Internal Error")
    # The "Serial Notify" capture is a mid-stream segment: its length field (52257) is not a PDU.
    with pytest.raises(P.PduError) as err:
        P.decode(frames["RTR Serial Notify"])
    assert err.value.code is P.ErrorCode.CORRUPT_DATA


@pytest.mark.parametrize("hexpdu", [STAYRTR_051_ASPA_V4, STAYRTR_051_ASPA_V6])
def test_stayrtr_051_legacy_aspa_layout_detected(hexpdu: str) -> None:
    raw = bytes.fromhex(hexpdu)
    aspa = P.decode(raw)
    assert isinstance(aspa, P.AspaPdu)
    assert (aspa.layout, aspa.announce, aspa.customer, aspa.providers) == (
        P.AspaLayout.LEGACY, True, 65001, (65010, 65020))
    assert aspa.afi == raw[9]
    assert P.encode(aspa) == raw


def test_current_aspa_layout_and_withdrawal() -> None:
    announce = P.AspaPdu(2, True, 64500, (64501, 64502, 64503))
    raw = P.encode(announce)
    assert P.aspa_layout(raw) is P.AspaLayout.CURRENT and P.decode(raw) == announce
    withdraw = P.encode(P.AspaPdu(2, False, 64500, ()))
    assert len(withdraw) == 12 and P.decode(withdraw) == P.AspaPdu(2, False, 64500, ())


@pytest.mark.parametrize(
    ("hexpdu", "code"),
    [
        ("0104000000000014010f0e00c00002000000fde9", P.ErrorCode.CORRUPT_DATA),  # prefix 15 > max 14
        ("010400000000001401182100c00002000000fde9", P.ErrorCode.CORRUPT_DATA),  # max length 33
        ("0107123400000010deadbeef00000001", P.ErrorCode.CORRUPT_DATA),  # v1 End of Data, 16 bytes
        ("010b000000000008", P.ErrorCode.UNSUPPORTED_PDU_TYPE),  # ASPA in version 1
        ("012a000000000008", P.ErrorCode.UNSUPPORTED_PDU_TYPE),
        ("0302000000000008", P.ErrorCode.UNSUPPORTED_PROTOCOL_VERSION),
        ("000a0000000000140000000000000005", P.ErrorCode.CORRUPT_DATA),  # length field lies
    ],
)
def test_bad_pdus_raise_the_rfc_error_code(hexpdu: str, code: P.ErrorCode) -> None:
    with pytest.raises(P.PduError) as err:
        P.decode(bytes.fromhex(hexpdu))
    assert err.value.code is code


def test_ingest_collects_keys_and_stops_at_control_pdus() -> None:
    records = [P.Prefix(1, True, "198.18.0.0", 16, 24, 65001), P.Prefix(1, True, "2001:db8::", 32, 48, 65002)]
    stream = b"".join(P.encode(r) for r in records) + P.encode(P.EndOfData(1, 7, 3, 10, 10, 600))
    pending = Pending(full=True, session_id=7)
    offset, control = ingest(stream[:-5], 0, 1, pending)  # End of Data incomplete
    assert control is None and offset == 20 + 32 and len(pending.announced) == 2
    offset, control = ingest(stream, offset, 1, pending)
    assert control == P.EndOfData(1, 7, 3, 10, 10, 600) and offset == len(stream)
    assert bytes.fromhex("101800c6120000") + (65001).to_bytes(4, "big") in pending.announced


def test_ingest_refuses_duplicates_and_foreign_versions() -> None:
    rec = P.encode(P.Prefix(1, True, "198.18.0.0", 16, 24, 65001))
    with pytest.raises(P.PduError) as err:
        ingest(rec + rec, 0, 1, Pending(True, 1))
    assert err.value.code is P.ErrorCode.DUPLICATE_ANNOUNCEMENT and err.value.pdu == rec
    with pytest.raises(P.PduError) as err:
        ingest(rec, 0, 2, Pending(True, 1))
    assert err.value.code is P.ErrorCode.UNEXPECTED_PROTOCOL_VERSION


def _v4_stream(n: int, version: int = 1) -> list[bytes]:
    return [P.encode(P.Prefix(version, True, f"10.{i >> 8 & 255}.{i & 255}.0", 24, 24, 65000 + i % 7))
            for i in range(n)]


def test_bulk_runs_equal_the_per_pdu_path() -> None:
    pdus = _v4_stream(3000)
    pdus[1500:1500] = [P.encode(P.Prefix(1, True, "2001:db8::", 32, 48, 1))] * 1  # break the run
    bulk = Pending(True, 1)
    offset, control = ingest(b"".join(pdus), 0, 1, bulk)
    slow = Pending(True, 1)
    for raw in pdus:  # one PDU per call: never a run
        ingest(raw, 0, 1, slow)
    assert control is None and offset == sum(map(len, pdus))
    assert bulk.announced == slow.announced and len(bulk.announced) == 3001


@pytest.mark.parametrize("where", [5, 2000, 2999])
def test_bulk_run_duplicate_is_named_exactly(where: int) -> None:
    pdus = _v4_stream(3000)
    pdus.insert(where + 1, pdus[where])
    pending = Pending(True, 1)
    with pytest.raises(P.PduError) as err:
        ingest(b"".join(pdus), 0, 1, pending)
    assert err.value.code is P.ErrorCode.DUPLICATE_ANNOUNCEMENT and err.value.pdu == pdus[where]


def test_bulk_run_with_bad_max_length_falls_back_to_the_exact_error() -> None:
    pdus = _v4_stream(100)
    bad = P.encode(P.Prefix(1, True, "10.99.0.0", 24, 24, 1))
    bad = bad[:10] + bytes((23,)) + bad[11:]  # max length 23 < prefix length 24
    pdus[60] = bad
    with pytest.raises(P.PduError) as err:
        ingest(b"".join(pdus), 0, 1, Pending(True, 1))
    assert err.value.code is P.ErrorCode.CORRUPT_DATA and err.value.pdu == bad


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([0, 1, 2]), st.booleans())
def test_garbage_only_ever_raises_pdu_error(blob: bytes, version: int, in_response: bool) -> None:
    """Fuzz: any byte string either decodes, waits for more bytes, or raises PduError with an RFC code."""
    pending = Pending(True, 1) if in_response else None
    try:
        offset, _ = ingest(blob, 0, version, pending)
        assert 0 <= offset <= len(blob)
    except P.PduError as exc:
        assert isinstance(exc.code, P.ErrorCode)
    try:
        P.decode(blob)
    except P.PduError as exc:
        assert isinstance(exc.code, P.ErrorCode)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(0, 2**32 - 1), max_size=20), st.booleans())
def test_aspa_roundtrip_in_both_layouts(customer: int, providers: list[int], announce: bool) -> None:
    current = P.AspaPdu(2, announce, customer, tuple(providers))
    assert P.decode(P.encode(current)) == current or (
        not announce and P.aspa_layout(P.encode(current)) is P.AspaLayout.LEGACY  # documented ambiguity
    )
    legacy = P.AspaPdu(2, announce, customer, tuple(providers), P.AspaLayout.LEGACY, 1)
    assert P.decode(P.encode(legacy)) == legacy


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([0, 1, 2]), st.sampled_from([*range(12), 42]), st.binary(max_size=60))
def test_well_framed_garbage_bodies_raise_only_pdu_error(version: int, ptype: int, body: bytes) -> None:
    """Fuzz with a correct header and length, so every type's body decoder sees arbitrary bytes."""
    raw = bytes((version, ptype, body[0] if body else 0, 0)) + (8 + len(body)).to_bytes(4, "big") + body
    try:
        pdu = P.decode(raw)
    except P.PduError as exc:
        assert isinstance(exc.code, P.ErrorCode)
        return
    assert P.frame_length(raw) == len(raw) and pdu.version == version


# --- issue 12: lengths before reads, host bits, short Router Keys ------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize("ptype", [4, 6])
def test_ingest_prefix_header_with_a_short_length_at_end_of_write_is_corrupt_data(
    version: int, ptype: int
) -> None:
    """Issue 12: `01 04 0000 00000008` ending a write raised IndexError (the flags byte was read first)."""
    header = bytes((version, ptype, 0, 0, 0, 0, 0, 8))
    with pytest.raises(P.PduError) as err:
        ingest(header, 0, version, Pending(True, 1))
    assert err.value.code is P.ErrorCode.CORRUPT_DATA and err.value.pdu == header


@pytest.mark.parametrize("bulk", [False, True], ids=["per-pdu", "bulk-run"])
@pytest.mark.parametrize(
    ("record", "where"),
    [
        (P.Prefix(1, True, "198.18.0.1", 16, 24, 65001), 0),  # host bit in the last byte
        (P.Prefix(1, True, "198.19.0.0", 15, 24, 65001), 40),  # 198.19/15: bit 16 is a host bit
        (P.Prefix(1, True, "2001:db8::1", 32, 48, 65002), 99),
        (P.Prefix(1, True, "2001:db8:0:8000::", 48, 48, 65002), 17),  # bit 48 set with length 48
        (P.Prefix(1, False, "10.0.0.128", 24, 24, 65003), 50),  # a withdrawal is refused all the same
    ],
    ids=["v4-last-bit", "v4-bit-16", "v6-last-bit", "v6-bit-48", "v4-withdrawal"],
)
def test_ingest_refuses_vrps_with_host_bits(record: P.Prefix, where: int, bulk: bool) -> None:
    """A VRP is a prefix: host bits past the prefix length are CORRUPT_DATA, naming the PDU, whether the
    PDU sits in a bulk run of announcements or goes the per-PDU way."""
    bad = P.encode(record)
    pdus = _v4_stream(100) if bulk else []
    pdus.insert(min(where, len(pdus)), bad)
    with pytest.raises(P.PduError) as err:
        ingest(b"".join(pdus), 0, 1, Pending(True, 1))
    assert err.value.code is P.ErrorCode.CORRUPT_DATA and err.value.pdu == bad
    assert "host bits" in err.value.text


def test_prefix_lengths_zero_and_full_width_have_no_host_bits() -> None:
    stream = b"".join(P.encode(r) for r in [
        P.Prefix(1, True, "0.0.0.0", 0, 8, 1), P.Prefix(1, True, "198.18.0.1", 32, 32, 2),
        P.Prefix(1, True, "::", 0, 0, 3), P.Prefix(1, True, "2001:db8::1", 128, 128, 4)])
    pending = Pending(True, 1)
    assert ingest(stream, 0, 1, pending) == (len(stream), None) and len(pending.announced) == 4


@pytest.mark.parametrize("length", [8, 28, 32], ids=["header-only", "no-as", "no-spki"])
def test_ingest_refuses_short_router_keys(length: int) -> None:
    """A Router Key is SKI (20), AS (4) and a non-empty SPKI; shorter ones were skipped unchecked."""
    full = P.encode(P.RouterKey(1, True, bytes(range(20)), 65001, b""))
    short = full[:4] + length.to_bytes(4, "big") + full[8:length]
    with pytest.raises(P.PduError) as err:
        ingest(short, 0, 1, Pending(True, 1))
    assert err.value.code is P.ErrorCode.CORRUPT_DATA and err.value.pdu == short
    with pytest.raises(P.PduError) as err:
        P.decode(short)
    assert err.value.code is P.ErrorCode.CORRUPT_DATA
    good = P.encode(P.RouterKey(1, True, bytes(range(20)), 65001, b"\x30\x59"))
    assert ingest(good, 0, 1, Pending(True, 1)) == (len(good), None)
