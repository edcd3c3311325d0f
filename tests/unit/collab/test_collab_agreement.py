"""The agreement rules of the draft (sections 4-6): choice, collisions, renewal, END, expiry."""

from __future__ import annotations

from appliance.collab import agreement as ag
from appliance.collab.agreement import Accepted, AgreementBook, Policy
from appliance.collab.model import Agreement, AgreementRequest, CollabError, Proposal, Refusal

POLICIES = {"as1": Policy(("resilient",), 3600.0)}
P_BE = Proposal(1, ("best-effort",), ("sav-prefixes",), (600.0,))
P_OK = Proposal(2, ("best-effort", "resilient"), ("sav-prefixes", "other"), (60.0, 600.0, 7200.0))


def _propose(book: AgreementBook, *proposals: Proposal, ca_id: str = "c1", peer: str = "as1",
             initiator: str = "as1") -> tuple[AgreementBook, Accepted | Refusal]:
    return ag.propose(book, AgreementRequest(ca_id, initiator, proposals), peer, "me", POLICIES, 1000.0)


def test_provider_chooses_the_first_acceptable_proposal_with_its_preferred_values() -> None:
    book, result = _propose(AgreementBook(), P_BE, P_OK)
    assert isinstance(result, Accepted)
    assert result.proposal == Proposal(2, ("resilient",), ("sav-prefixes",), (600.0,))  # longest <= max
    assert result.agreement == Agreement("c1", "as1", "me", "resilient", "sav-prefixes", 1600.0)
    assert book.get("c1") == result.agreement
    assert ag.check_response(AgreementRequest("c1", "as1", (P_BE, P_OK)), result, "me", 1000.0) is None
    assert ag.check_response(AgreementRequest("c1", "as1", (P_BE, P_OK)), result, "other", 1000.0) \
        == Refusal(CollabError.ERROR_UNACCEPTABLE_PROVIDER, "provider 'me' is not 'other'")


def test_refusals() -> None:
    assert _propose(AgreementBook(), P_BE)[1].code is CollabError.ERROR_UNACCEPTABLE_PROPOSALS  # type: ignore[union-attr]
    book, _ = _propose(AgreementBook(), P_OK)
    again = _propose(book, P_OK)
    assert isinstance(again[1], Refusal) and again[1].code is CollabError.ERROR_UNACCEPTABLE_CA_ID
    assert again[0] is book
    unknown = _propose(AgreementBook(), P_OK, peer="as9", initiator="as9")[1]
    assert isinstance(unknown, Refusal) and unknown.code is CollabError.ERROR_UNACCEPTABLE_INITIATOR
    forged = _propose(AgreementBook(), P_OK, initiator="as2")[1]
    assert isinstance(forged, Refusal) and forged.code is CollabError.FORGED


def test_renewal_bounds_and_parties() -> None:
    book, _ = _propose(AgreementBook(), P_OK)
    book2, renewed = ag.renew(book, "c1", "as1", 1100.0 + 3600.0, 3600.0, 1100.0)
    assert isinstance(renewed, Agreement) and renewed.expires_at == 4700.0 and book2.get("c1") == renewed
    for bad in (900.0, 1100.0 + 3601.0):
        _, r = ag.renew(book, "c1", "as1", bad, 3600.0, 1100.0)
        assert isinstance(r, Refusal) and r.code is CollabError.ERROR_UNACCEPTABLE_NEW_EXPIRATION_DATE
    _, r = ag.renew(book, "c1", "as2", 2000.0, 3600.0, 1100.0)
    assert isinstance(r, Refusal) and r.code is CollabError.NO_AGREEMENT
    _, r = ag.renew(book, "c1", "as1", 5000.0, 3600.0, 1600.0)
    assert isinstance(r, Refusal) and r.code is CollabError.AGREEMENT_EXPIRED


def test_end_by_either_party_and_expiry_reported_once() -> None:
    book, _ = _propose(AgreementBook(), P_OK)
    for party in ("as1", "me"):
        ended_book, ended = ag.end(book, "c1", party)
        assert isinstance(ended, Agreement) and ended.ended and ended_book.current("as1", "me", 1100) is None
    _, r = ag.renew(ag.end(book, "c1", "me")[0], "c1", "as1", 2000.0, 3600.0, 1100.0)
    assert isinstance(r, Refusal) and r.code is CollabError.NO_AGREEMENT
    assert ag.expire(book, 1599.0) == (book, ())
    book2, due = ag.expire(book, 1600.0)
    assert [a.ca_id for a in due] == ["c1"]
    assert ag.expire(book2, 1700.0)[1] == ()
    assert ag.prune(book2, 1600.0 + 86401.0, 86400.0).agreements == {}
    assert ag.book_from_json(ag.book_to_json(book2)) == book2
