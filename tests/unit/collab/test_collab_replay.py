"""Which SavInfo is accepted: the checks in order, the state advanced only on acceptance."""

from __future__ import annotations

from dataclasses import replace

from appliance.collab import replay
from appliance.collab.agreement import AgreementBook
from appliance.collab.model import Agreement, CollabError, SavInfo
from appliance.collab.replay import ReplayState

BOOK = AgreementBook({"c1": Agreement("c1", "as1", "me", "resilient", "sav-prefixes", 2000.0),
                      "c2": Agreement("c2", "as1", "me", "resilient", "sav-prefixes", 2000.0, ended=True)})
EMPTY = ReplayState()
INFO = SavInfo("c1", "as1", 65001, 5, 1000.0, ("192.0.2.0/24",), ())


def _code(info: SavInfo, state: ReplayState = EMPTY, peer: str = "as1", now: float = 1000.0,
          asn: int | None = 65001) -> CollabError | None:
    new, refusal = replay.check(state, BOOK, peer, info, now, 300.0, asn)
    if refusal is not None:
        assert new is state
    return refusal.code if refusal else None


def test_accepts_then_refuses_the_same_seq() -> None:
    state, refusal = replay.check(ReplayState(), BOOK, "as1", INFO, 1000.0)
    assert refusal is None and state.last("as1", "c1") == 5
    assert _code(INFO, state) is CollabError.REPLAYED
    assert _code(replace(INFO, seq=4), state) is CollabError.REPLAYED
    assert _code(replace(INFO, seq=6), state) is None
    assert replay.state_from_json(replay.state_to_json(state)) == state


def test_each_check() -> None:
    assert _code(replace(INFO, ca_id="nope")) is CollabError.NO_AGREEMENT
    assert _code(replace(INFO, ca_id="c2")) is CollabError.NO_AGREEMENT
    assert _code(INFO, peer="as2") is CollabError.NO_AGREEMENT  # not a party
    assert _code(INFO, now=2000.0) is CollabError.AGREEMENT_EXPIRED
    assert _code(replace(INFO, sender="as2")) is CollabError.FORGED
    assert _code(replace(INFO, sender_asn=65009)) is CollabError.FORGED
    assert _code(replace(INFO, sender_asn=65009), asn=None) is None
    assert _code(INFO, now=1301.0) is CollabError.REPLAYED
    assert _code(replace(INFO, sent_at=1299.0)) is None


def test_forget_drops_seqs_of_forgotten_agreements() -> None:
    state = ReplayState({("as1", "c1"): 3, ("as1", "gone"): 9})
    assert replay.forget(state, BOOK) == ReplayState({("as1", "c1"): 3})
