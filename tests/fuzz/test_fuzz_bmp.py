"""Fuzz the BMP decoder (sources/paths/bmp.py): arbitrary and mutated byte streams, in arbitrary chunks.

Properties: feed() and close() never raise; every event is a BmpEvent; the router is named by a valid
name (a sysName off the wire is one only if appliance.names says so) or by its address; close() ends
with exactly one RouterDown; a decoder that lost framing ignores further input.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.names import router_name_problem
from appliance.sources.paths.bmp import BmpDecoder
from appliance.sources.paths.events import BmpEvent, RouterDown, RouterUp

from . import SEEDS, corpus, fuzz_settings

ADDRESS = "198.18.0.1"
SESSION = bytes.fromhex((SEEDS / "bmp-session.hex").read_text().strip())
EVENT_TYPES = BmpEvent.__args__  # type: ignore[attr-defined]


def _feed(stream: bytes, chunks: list[int]) -> tuple[BmpDecoder, list[BmpEvent]]:
    dec = BmpDecoder(ADDRESS)
    events: list[BmpEvent] = []
    pos, i = 0, 0
    while pos < len(stream):
        step = chunks[i % len(chunks)] if chunks else len(stream)
        events += dec.feed(stream[pos : pos + step])
        pos, i = pos + step, i + 1
    return dec, events


def _check(dec: BmpDecoder, events: list[BmpEvent]) -> None:
    assert all(isinstance(e, EVENT_TYPES) for e in events)
    assert dec.router == ADDRESS or router_name_problem(dec.router) is None, dec.router
    for ev in events:
        if isinstance(ev, RouterUp | RouterDown):
            assert ev.router == dec.router
    if dec.closed and not dec.terminated:
        assert dec.feed(SESSION) == []  # framing lost: the connection is done
    final = dec.close("fuzz")
    assert [type(e) for e in final] == [RouterDown] and dec.close("again") == []


@fuzz_settings()
@given(stream=st.binary(max_size=600), chunks=st.lists(st.integers(1, 64), max_size=4))
def test_fuzz_arbitrary_bytes(stream: bytes, chunks: list[int]) -> None:
    _check(*_feed(stream, chunks))


@fuzz_settings()
@given(
    flips=st.lists(st.tuples(st.integers(0, len(SESSION) - 1), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, len(SESSION)),
    insert=st.tuples(st.integers(0, len(SESSION)), st.binary(max_size=16)),
    chunks=st.lists(st.integers(1, 97), max_size=4),
)
def test_fuzz_mutated_session(flips: list[tuple[int, int]], cut: int, insert: tuple[int, bytes],
                              chunks: list[int]) -> None:
    stream = bytearray(SESSION)
    for at, value in flips:
        stream[at] = value
    at, extra = insert
    stream[at:at] = extra
    _check(*_feed(bytes(stream[: cut + len(extra)]), chunks))


@fuzz_settings()
@given(sys_name=st.text(max_size=80) | st.sampled_from(["../../../X", "r1/..", "..", "r 1", "r1"]))
def test_fuzz_sys_names_never_name_a_router_unless_valid(sys_name: str) -> None:
    raw = sys_name.encode("utf-8", "surrogatepass")
    body = (2).to_bytes(2, "big") + len(raw).to_bytes(2, "big") + raw
    msg = bytes([3]) + (6 + len(body)).to_bytes(4, "big") + bytes([4]) + body
    dec, events = _feed(msg, [])
    _check(dec, events)
    ups = [e for e in events if isinstance(e, RouterUp)]
    assert len(ups) == 1 and ups[0].router in (sys_name, ADDRESS)
    assert (ups[0].router == sys_name) == (router_name_problem(sys_name) is None and bool(sys_name))


@pytest.mark.parametrize("case", corpus("bmp"), ids=lambda p: p.name)
def test_corpus_inputs_that_crashed_before(case: Path) -> None:
    dec, events = _feed(bytes.fromhex(case.read_text().strip()), [7])
    _check(dec, events)
    assert [e.router for e in events if isinstance(e, RouterUp)] == [ADDRESS]  # the bad sysName unused
