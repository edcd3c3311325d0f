"""The netlink element batch's encoding (the kernel's answer is tested in integration/enforcer)."""

from __future__ import annotations

import struct

import pytest

from appliance.enforcer.nftnl import (
    NFT_MSG_DELSETELEM,
    NFT_MSG_NEWSETELEM,
    PREFIXES_PER_MESSAGE,
    ElementChange,
    Unencodable,
    apply_elements,
    encode,
    interval_keys,
)


def messages(batch: bytes) -> list[tuple[int, int, bytes]]:
    out, offset = [], 0
    while offset < len(batch):
        length, kind, flags = struct.unpack_from("=IHH", batch, offset)
        out.append((kind, flags, batch[offset + 16 : offset + length]))
        offset += length
    return out


def test_interval_keys_are_the_network_and_the_first_address_after_it() -> None:
    assert interval_keys("198.18.1.0/24") == (bytes([198, 18, 1, 0]), bytes([198, 18, 2, 0]))
    assert interval_keys("198.18.9.9") == (bytes([198, 18, 9, 9]), bytes([198, 18, 9, 10]))
    start, end = interval_keys("2001:db8::/32")
    assert start[:4] == bytes.fromhex("20010db8") and end[:4] == bytes.fromhex("20010db9") and len(end) == 16


@pytest.mark.parametrize("prefix",
                         ["255.255.255.255/32", "0.0.0.0/0", "ffff::/16", "198.18.0.0/33", "ip saddr"])
def test_an_interval_ending_at_the_top_is_left_to_nft(prefix: str) -> None:
    with pytest.raises(Unencodable):
        interval_keys(prefix)


def test_one_batch_removes_before_it_adds_and_splits_long_lists() -> None:
    added = [f"198.18.{i // 256}.{i % 256}" for i in range(PREFIXES_PER_MESSAGE + 1)]
    changes = [ElementChange("a", (), added), ElementChange("b", ("198.19.0.0/16",), ())]
    batch, acked = encode("savd_enforcer", changes)
    msgs = messages(batch)
    kinds = [kind & 0xFF for kind, _, _ in msgs]
    assert kinds == [0x10, NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM, NFT_MSG_NEWSETELEM, 0x11]
    assert acked == 3 and all(flags & 0x4 for _, flags, _ in msgs[1:-1])   # each element message acked
    assert b"savd_enforcer\0" in msgs[1][2] and b"b\0" in msgs[1][2]
    assert msgs[2][2].count(bytes([198, 18, 0, 1])) == 2   # .1's start key and .0's end key


def test_nothing_to_change_sends_nothing() -> None:
    assert apply_elements("savd_enforcer", [ElementChange("a", (), ())]) == 0
