"""Fuzz the RTR client with hypothesis: the PDU codec, the bulk ingest and the session; replay the corpus.

Targets and their documented errors:
- `pdu.decode` / `pdu.frame_length` (one PDU) and `ingest.ingest` (a stream of PDUs, as a session feeds
  it): `PduError` only. Values are asserted too: what decodes re-encodes to the same record, what ingest
  keeps is a well-formed VRP key (no host bits), and ingest and decode agree on Prefix PDUs.
- `CacheSession` under `RtrManager`, over in-memory streams: whatever a cache sends on its first
  connections, no session task dies (no `rtr-task-died` alarm), every Error Report the client sends is
  well-formed, and within a deadline (no hang) the session reconnects and syncs a good cache's data.

Inputs are arbitrary bytes and streams of valid PDUs with mutations (byte flips, forged length fields,
PDUs shortened to the length they claim, truncation), since random bytes rarely get past a header.
`SAVD_FUZZ_EXAMPLES` (default 200) sets the examples per target. Every crash found is kept under
tests/fuzz/corpus/rtr/ and replayed, through the decoder and through a session, on every run.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.model import Vrp
from rpki.keys import keys_to_vrps
from rpki.rtr import pdu as P
from rpki.rtr.ingest import Pending, ingest
from rpki.rtr.manager import RtrManager
from rpki.rtr.session import CacheConfig, CacheState
from rpki.tables import RpkiTables

EXAMPLES = int(os.environ.get("SAVD_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CORPUS = Path(__file__).parent / "corpus" / "rtr"


# --- strategies --------------------------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
versions = st.integers(0, 2)


@st.composite
def _prefixes(draw: st.DrawFn, version: int) -> P.Prefix:
    """A Prefix PDU record; now and then with host bits set (which a client must refuse)."""
    v6 = draw(st.booleans())
    width = 128 if v6 else 32
    plen = draw(st.integers(0, width))
    max_len = draw(st.integers(plen, width))
    raw = draw(st.integers(0, (1 << width) - 1))
    if draw(st.integers(0, 7)) != 0:
        raw &= ((1 << width) - 1) ^ ((1 << (width - plen)) - 1)
    addr = ipaddress.IPv6Address(raw) if v6 else ipaddress.IPv4Address(raw)
    return P.Prefix(version, draw(st.booleans()), str(addr), plen, max_len, draw(u32))


def _valid_pdus(v: int) -> st.SearchStrategy[P.Pdu]:
    """Any PDU a cache or router may send in version `v`, well-formed."""
    choices: list[st.SearchStrategy[P.Pdu]] = [
        st.builds(P.SerialNotify, st.just(v), u16, u32),
        st.builds(P.SerialQuery, st.just(v), u16, u32),
        st.builds(P.ResetQuery, st.just(v)),
        st.builds(P.CacheResponse, st.just(v), u16),
        PREFIXES[v],
        st.builds(P.CacheReset, st.just(v)),
        st.builds(P.ErrorReport, st.just(v), st.integers(0, 9), st.binary(max_size=40),
                  st.text(max_size=20)),
    ]
    if v == 0:
        choices.append(st.builds(P.EndOfData, st.just(0), u16, u32))
    else:
        choices.append(st.builds(P.EndOfData, st.just(v), u16, u32, u32, u32, u32))
        choices.append(st.builds(P.RouterKey, st.just(v), st.booleans(), st.binary(min_size=20, max_size=20),
                                 u32, st.binary(min_size=1, max_size=100)))
    if v == 2:
        choices.append(st.builds(P.AspaPdu, st.just(2), st.booleans(), u32,
                                 st.lists(u32, max_size=6).map(tuple)))
        choices.append(st.builds(P.AspaPdu, st.just(2), st.booleans(), u32,
                                 st.lists(u32, max_size=6).map(tuple), st.just(P.AspaLayout.LEGACY),
                                 st.integers(0, 1)))
    return st.one_of(choices)


# Built once: strategies made inside a draw cost more than the code under test.
PREFIXES = {v: _prefixes(v) for v in (0, 1, 2)}
VALID = {v: _valid_pdus(v) for v in (0, 1, 2)}
ANY_VALID = st.one_of(*VALID.values())

Mutation = tuple[str, int, int, bytes]
mutations = st.lists(
    st.tuples(st.sampled_from(["set", "length", "shorten", "truncate", "insert"]), st.integers(0, 1 << 16),
              st.one_of(st.sampled_from([0, 8, 12, 20, 24, 32]), u32), st.binary(min_size=1, max_size=8)),
    max_size=3,
)


def mutate(raw: bytes, plan: list[Mutation]) -> bytes:
    """`raw` changed by `plan`: a byte set, a forged length field, a PDU shortened to a length it claims
    (framing intact, body too short for its type), truncation, inserted bytes. Positions wrap."""
    data = bytearray(raw)
    for op, at, value, blob in plan:
        if op == "shorten" and len(data) > 8:
            short = 8 + value % (len(data) - 8)
            data[4:8] = short.to_bytes(4, "big")
            del data[short:]
        elif op == "set" and data:
            data[at % len(data)] = value & 0xFF
        elif op == "length" and len(data) >= 8:
            data[4:8] = (len(data) + 4 if value == 24 else value).to_bytes(4, "big")
        elif op == "truncate" and data:
            del data[at % len(data):]
        elif op == "insert":
            at %= len(data) + 1
            data[at:at] = blob
    return bytes(data)


def broken(pdus: st.SearchStrategy[P.Pdu]) -> st.SearchStrategy[bytes]:
    """Encoded PDUs of `pdus`, mutated."""
    def encode_and_mutate(pdu: P.Pdu, plan: list[Mutation]) -> bytes:
        return mutate(P.encode(pdu), plan)

    return st.builds(encode_and_mutate, pdus, mutations)


@st.composite
def pdu_streams(draw: st.DrawFn, version: int) -> bytes:
    """A Cache Response, then valid and mutated PDUs of `version` (sometimes another), maybe a raw tail."""
    parts = [P.encode(P.CacheResponse(version, 7))] if draw(st.booleans()) else []
    for pdu, plan in draw(st.lists(st.tuples(st.one_of(VALID[version], ANY_VALID), mutations), max_size=8)):
        parts.append(mutate(P.encode(pdu), plan))
    if draw(st.booleans()):  # end the write with a broken PDU of the session's version
        parts.append(draw(broken(VALID[version])))
    tail = draw(st.sampled_from(["none", "bytes", "header"]))
    if tail == "bytes":
        parts.append(draw(st.binary(max_size=24)))
    elif tail == "header":  # a write that ends right after a header: the reader must not look past it
        ptype = draw(st.one_of(st.sampled_from(P.PduType), st.integers(12, 255)))
        length = draw(st.one_of(st.sampled_from([0, 8, 12, 20, 24, 32]), st.integers(0, 40)))
        parts.append(P.HEADER.pack(version, int(ptype), draw(u16), length))
    return b"".join(parts)


STREAMS = {v: pdu_streams(v) for v in (0, 1, 2)}
one_pdu = st.one_of(st.binary(max_size=64), broken(ANY_VALID))


# --- properties --------------------------------------------------------------------------------------


def _is_valid_key(key: bytes) -> bool:
    """A VRP key (rpki/keys.py) as ingest may keep it: lengths in range, no host bits, zero byte zero."""
    width = 32 if len(key) == 11 else 128
    plen, max_len, zero = key[0], key[1], key[2]
    address = int.from_bytes(key[3:-4], "big")
    host_bits = address & ((1 << (width - plen)) - 1) if plen <= width else 1
    return len(key) in (11, 23) and plen <= max_len <= width and zero == 0 and host_bits == 0


def check_decode(raw: bytes) -> None:
    """decode raises only PduError; what it accepts re-encodes to a PDU that decodes to the same record."""
    try:
        pdu = P.decode(raw)
    except P.PduError as exc:
        assert isinstance(exc.code, P.ErrorCode)
        return
    again = P.decode(P.encode(pdu))
    assert again == pdu
    if isinstance(pdu, P.RouterKey):
        assert len(pdu.ski) == 20 and pdu.spki


def check_ingest(data: bytes, version: int, in_response: bool) -> None:
    """Feed `data` as a session does: ingest, hand control PDUs on, until incomplete or PduError."""
    pending = Pending(True, 7) if in_response else None
    offset = 0
    while True:
        try:
            new_offset, pdu = ingest(data, offset, version, pending)
        except P.PduError as exc:
            assert isinstance(exc.code, P.ErrorCode)
            break
        assert offset <= new_offset <= len(data)
        if pdu is None:
            rest = len(data) - new_offset  # None means: what is left is an incomplete PDU
            assert rest < 8 or (P.frame_length(data, new_offset) or 0) > rest
            break
        assert new_offset > offset
        offset = new_offset
    if pending is not None:
        assert all(_is_valid_key(k) for k in pending.announced | pending.withdrawn)


def check_framing(raw: bytes) -> None:
    try:
        length = P.frame_length(raw)
    except P.PduError as exc:
        assert exc.code is P.ErrorCode.CORRUPT_DATA
        return
    assert length is None if len(raw) < 8 else 8 <= (length or 0) <= P.MAX_PDU_LEN


@FUZZ
@given(one_pdu)
def test_fuzz_rtr_decode_raises_only_pdu_error(raw: bytes) -> None:
    check_framing(raw)
    check_decode(raw)


@FUZZ
@given(versions.flatmap(lambda v: st.tuples(st.just(v), STREAMS[v])), st.booleans())
def test_fuzz_rtr_ingest_raises_only_pdu_error(case: tuple[int, bytes], in_response: bool) -> None:
    version, data = case
    check_ingest(data, version, in_response)


@FUZZ
@given(versions.flatmap(lambda v: st.tuples(st.just(v), broken(PREFIXES[v]))))
def test_fuzz_rtr_ingest_and_decode_agree_on_prefix_pdus(case: tuple[int, bytes]) -> None:
    """One Prefix PDU (maybe mutated) in a response: ingest keeps it iff decode accepts it in the
    session's version and it has no host bits (the codec keeps them; a session refuses them)."""
    version, raw = case
    pending = Pending(True, 7)
    try:
        offset, control = ingest(raw, 0, version, pending)
        taken: bool | None = control is None and offset == len(raw) and offset > 0
    except P.PduError:
        taken = False
    if len(raw) < 8 or int.from_bytes(raw[4:8], "big") > len(raw) or raw[1] not in (4, 6):
        return  # incomplete or not a Prefix PDU: nothing to compare
    try:
        decoded = P.decode(raw)
        accepted = (
            isinstance(decoded, P.Prefix)
            and decoded.version == version
            and not P.has_host_bits(ipaddress.ip_address(decoded.prefix).packed, decoded.prefix_len)
        )
    except P.PduError:
        accepted = False
    assert taken == accepted, raw.hex()


# --- corpus ------------------------------------------------------------------------------------------


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.hex"))


@dataclass(frozen=True)
class CorpusCase:
    version: int
    """The RTR version the stream is in (the session negotiates it from the first PDU)."""
    expect: P.ErrorCode | None
    """The code of the Error Report the client must send for it; None: the stream is good."""
    read_size: int
    """The session's read size: how the stream reaches it in pieces."""
    data: bytes


def read_corpus(path: Path) -> CorpusCase:
    """`# version N`, `# expect CODE|none` and `# read_size N` lines, other `#` text comments, the rest
    hex (what the cache sends after the client's first query)."""
    version, expect, read_size, hex_text = 2, "CORRUPT_DATA", 1 << 16, []
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("# ").partition(" ")
        if line.startswith("# ") and key in ("version", "expect", "read_size"):
            version = int(value) if key == "version" else version
            expect = value.strip() if key == "expect" else expect
            read_size = int(value) if key == "read_size" else read_size
        elif not line.startswith("#"):
            hex_text.append(line.split("#")[0])
    code = None if expect == "none" else P.ErrorCode[expect]
    return CorpusCase(version, code, read_size, bytes.fromhex("".join(hex_text)))


def test_corpus_is_not_empty() -> None:
    assert corpus_files(), f"no corpus files under {CORPUS}"


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.stem)
def test_corpus_rtr_decoder_replay(path: Path) -> None:
    """Each kept crasher: ingest raises only PduError on it, the expected one, in every split."""
    case = read_corpus(path)
    for in_response in (True, False):
        for cut in range(len(case.data) + 1):
            check_ingest(case.data[:cut], case.version, in_response)
    pending: Pending | None = None
    offset, refused = 0, None
    try:
        while True:
            offset, pdu = ingest(case.data, offset, case.version, pending)
            if pdu is None:
                break
            if isinstance(pdu, P.CacheResponse):
                pending = Pending(True, pdu.session_id)
            if isinstance(pdu, P.EndOfData):
                pending = None
    except P.PduError as exc:
        refused = exc.code
    assert refused is case.expect
    check_decode(case.data)


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.stem)
def test_corpus_rtr_session_replay(path: Path) -> None:
    """Each kept crasher, sent by a cache: the client answers with the expected Error Report, its session
    survives (no task death), reconnects and syncs the next connection's good data."""
    case = read_corpus(path)
    cache, manager, _tables = asyncio.run(run_session([case.data], read_size=case.read_size))
    errors = [pdu for pdu in cache.client_pdus() if isinstance(pdu, P.ErrorReport)]
    if case.expect is None:
        assert errors == []
    else:
        assert errors and errors[0].code == case.expect and errors[0].version == case.version
    assert cache.connections >= 2
    assert manager.sessions[0].version == 2  # the good cache speaks v2 again after the bad one


# --- the session over in-memory streams -------------------------------------------------------------

SESSION_ID = 0x4242
GOOD = (
    P.Prefix(0, True, "198.18.0.0", 16, 24, 65001),
    P.Prefix(0, True, "2001:db8::", 32, 48, 65002),
)


def good_sync(version: int) -> bytes:
    """A full sync of GOOD in `version`, as a well-behaved cache answers a Reset Query."""
    records = [P.Prefix(version, p.announce, p.prefix, p.prefix_len, p.max_len, p.asn) for p in GOOD]
    timers = () if version == 0 else (3600, 600, 7200)
    pdus: list[P.Pdu] = [P.CacheResponse(version, SESSION_ID), *records,
                         P.EndOfData(version, SESSION_ID, 100, *timers)]
    return b"".join(P.encode(pdu) for pdu in pdus)


@dataclass
class MemoryWriter:
    """The client's end of an in-memory connection: its first write (a query) gets the cache's answer fed
    into the client's reader; every write is recorded."""

    cache: MemoryCache
    reader: asyncio.StreamReader
    answer: bytes | None
    """Fed after the first query, then end of stream; None: a good sync in the query's version, kept open."""
    answered: bool = False

    def write(self, data: bytes) -> None:
        self.cache.sent.append(bytes(data))
        if self.answered:
            return
        self.answered = True
        if self.answer is None:
            self.reader.feed_data(good_sync(data[0]))
            return
        self.reader.feed_data(self.answer)
        self.reader.feed_eof()

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        if not self.reader.at_eof():
            self.reader.feed_eof()

    async def wait_closed(self) -> None:
        return None


@dataclass
class MemoryCache:
    """A connector: connection n answers with streams[n], then the connections are good caches."""

    streams: list[bytes]
    sent: list[bytes] = field(default_factory=list)
    connections: int = 0

    async def __call__(
        self, host: str, port: int, timeout_s: float
    ) -> tuple[asyncio.StreamReader, MemoryWriter]:
        answer = self.streams[self.connections] if self.connections < len(self.streams) else None
        self.connections += 1
        reader = asyncio.StreamReader()
        return reader, MemoryWriter(self, reader, answer)

    def client_pdus(self) -> list[P.Pdu]:
        """Everything the client sent, decoded (our own encoder: must always decode)."""
        data, out, offset = b"".join(self.sent), [], 0
        while offset < len(data):
            length = P.frame_length(data, offset)
            assert length is not None and offset + length <= len(data), data[offset:].hex()
            out.append(P.decode(data[offset : offset + length]))
            offset += length
        return out


async def run_session(
    streams: list[bytes], read_size: int, max_version: int = 2, timeout_s: float = 5.0
) -> tuple[MemoryCache, RtrManager, RpkiTables]:
    """Run one supervised session whose first connections get `streams`; return once it holds GOOD."""
    cache = MemoryCache(streams)
    tables = RpkiTables()
    config = CacheConfig("memory", 323, name="fuzz", max_version=max_version, retry_s=0.001,
                         refresh_s=3600, expire_s=3600, response_timeout_s=0.05, read_size=read_size)
    manager = RtrManager([config], tables, connector=cache)  # type: ignore[arg-type]
    want = {Vrp(f"{p.prefix}/{p.prefix_len}", p.max_len, p.asn) for p in GOOD}
    session = manager.sessions[0]

    def good_data_in_sync() -> bool | str:
        got = set(keys_to_vrps(session.vrps))
        if session.state is CacheState.IN_SYNC and got == want and cache.connections > len(streams):
            return True
        return f"state={session.state} vrps={sorted(map(str, got))} connections={cache.connections}"

    await manager.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while (last := good_data_in_sync()) is not True:
            assert asyncio.get_running_loop().time() < deadline, f"no recovery in {timeout_s} s: {last}"
            assert all(not t.done() for t in manager._tasks), "a supervisor task ended"
            await asyncio.sleep(0.002)
    finally:
        await manager.stop()
    died = [e for e in manager.events if e.fields.get("detail") == "task-died"]
    assert not died, died[0].message
    for pdu in cache.client_pdus():
        assert isinstance(pdu, (P.ResetQuery, P.SerialQuery, P.ErrorReport)), pdu
        if isinstance(pdu, P.ErrorReport):
            assert pdu.code in set(P.ErrorCode) and pdu.text
    return cache, manager, tables


@st.composite
def broken_syncs(draw: st.DrawFn, version: int) -> bytes:
    """A full sync (Prefix, ASPA, End of Data) in `version` with a PDU or two mutated, maybe cut short,
    maybe after early Serial Notifies: what a faulty cache or a garbled path delivers."""
    pdus: list[P.Pdu] = [P.CacheResponse(version, SESSION_ID)]
    pdus += draw(st.lists(PREFIXES[version], max_size=6))
    if version == 2:
        pdus += draw(st.lists(st.builds(P.AspaPdu, st.just(2), st.just(True), u32,
                                        st.lists(u32, max_size=4).map(tuple)), max_size=2))
    timers = () if version == 0 else (draw(u32), draw(u32), draw(u32))
    pdus.append(P.EndOfData(version, SESSION_ID, draw(u32), *timers))
    raws = [P.encode(p) for p in pdus]
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(raws) - 1))
        raws[at] = mutate(raws[at], draw(mutations))
    early = [P.encode(P.SerialNotify(draw(versions), draw(u16), draw(u32)))
             for _ in range(draw(st.integers(0, 2)))]
    data = b"".join([*early, *raws])
    return data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data


cache_streams = st.one_of(
    *(broken_syncs(v) for v in (0, 1, 2)),
    *STREAMS.values(),
    st.binary(max_size=64),
)


@FUZZ
@given(st.lists(cache_streams, min_size=1, max_size=3), st.integers(1, 64), st.integers(0, 2))
def test_fuzz_rtr_session_survives_and_resyncs(
    streams: list[bytes], read_size: int, max_version: int
) -> None:
    """Whatever the first connections bring, the session never dies and syncs the good cache after them."""
    _cache, manager, tables = asyncio.run(run_session(streams, read_size, max_version))
    assert tables.counts()["vrp"] == len(GOOD)
    assert manager.sessions[0].version is not None and manager.sessions[0].version <= max_version
