"""The JSON form of the collaboration messages: round trips, and every malformed field named."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.collab.model import (
    Agreement,
    AgreementRequest,
    CollabError,
    CollabRefused,
    Proposal,
    SavInfo,
    agreement_from_json,
    agreement_to_json,
    error_from_json,
    request_from_json,
    request_to_json,
    sav_info_from_json,
    sav_info_to_json,
)

INFO = SavInfo("a-1", "as65001", 65001, 7, 1000.0, ("192.0.2.0/24", "2001:db8::/32"), ("198.51.100.1",))


def test_round_trips() -> None:
    assert sav_info_from_json(sav_info_to_json(INFO)) == INFO
    a = Agreement("a-1", "as65001", "as65002", "resilient", "sav-prefixes", 5000.0, ended=True)
    assert agreement_from_json(agreement_to_json(a)) == a
    r = AgreementRequest("a-1", "as65001", (Proposal(1, ("resilient", "best-effort"), ("sav-prefixes",),
                                                     (3600.0, 60.0)),))
    assert request_from_json(request_to_json(r)) == r


def _malformed(data: Any, parse: Any = sav_info_from_json) -> str:
    with pytest.raises(CollabRefused) as exc:
        parse(data)
    assert exc.value.code is CollabError.MALFORMED
    return exc.value.message


@pytest.mark.parametrize(("key", "value", "field"), [
    ("prefixes", ["192.0.2.1/24"], "prefixes[0]"),  # not canonical
    ("prefixes", ["nonsense"], "prefixes[0]"),
    ("prefixes", "192.0.2.0/24", "prefixes"),
    ("arrives_from", ["198.51.100.1", "x"], "arrives_from[1]"),
    ("seq", 0, "seq"),
    ("seq", True, "seq"),
    ("sent_at", float("nan"), "sent_at"),
    ("sender_asn", 2**32, "sender_asn"),
    ("sender", "", "sender"),
    ("ca_id", None, "ca_id"),
])
def test_malformed_sav_info_names_the_field(key: str, value: Any, field: str) -> None:
    data = {**sav_info_to_json(INFO), key: value}
    assert _malformed(data).startswith(field + ":")


def test_malformed_request_and_body() -> None:
    assert _malformed([1, 2]).startswith("sav-info:")
    bad = {"ca_id": "x", "initiator": "a", "proposals": [{"proposal_id": 1, "modes": ["resilient"],
                                                          "info": ["sav-prefixes"], "duration_s": [-1]}]}
    assert _malformed(bad, request_from_json).startswith("proposals[0].duration_s:")
    assert _malformed({"ca_id": "x", "initiator": "a", "proposals": []},
                      request_from_json).startswith("proposals:")


def test_error_codes_are_the_drafts_and_savds() -> None:
    assert {e.value for e in CollabError} >= {
        "ERROR_UNACCEPTABLE_CA_ID", "ERROR_UNACCEPTABLE_PROVIDER", "ERROR_UNACCEPTABLE_INITIATOR",
        "ERROR_UNACCEPTABLE_PROPOSALS", "ERROR_UNACCEPTABLE_NEW_EXPIRATION_DATE", "NO_AGREEMENT",
        "AGREEMENT_EXPIRED", "REPLAYED", "FORGED", "MALFORMED"}
    assert error_from_json({"error": "REPLAYED", "message": "m"}).code is CollabError.REPLAYED
    assert _malformed({"error": "NOPE"}, error_from_json).startswith("error:")
