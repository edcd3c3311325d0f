"""The daemon's side of collaboration (sources/collab.py): SavInfo and agreements in, allowances announced
to the store as `collab:<peer>`, the recompute lifting the path-based block on the peer's interface, and
the fallback (retraction + alarm) when the agreement ends or lapses."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.api.collab import collaboration_view
from appliance.collab.model import Agreement, SavInfo
from appliance.config import Config, parse_config
from appliance.model import BgpPath, CollabAllowance, Interface, ListKind
from appliance.monitor import ManualClock, Monitor
from appliance.recompute import ConfigEngine
from appliance.sources.collab import CollabSource, own_info
from appliance.state import Announce, ReplaceSource, StateStore
from appliance.state.changes import decode_change, encode_change

CONFIG = """
[appliance]
asn = 65000
router_id = "198.18.20.10"
data_dir = "{data_dir}"
[engine]
algorithm = "efp-a"
[[engine.router]]
name = "b1"
role = "border"
[[engine.neighbor]]
router = "b1"
interface = "c1"
asn = 65001
relationship = "customer"
address = "203.0.113.1"
[[engine.neighbor]]
router = "b1"
interface = "c2"
asn = 65002
relationship = "customer"
address = "203.0.113.5"
local_address = "203.0.113.6"
[collaboration]
prefixes = ["198.18.100.0/22"]
"""

START = 1_700_000_000.0
PEER = "as65002"
PEER_PREFIX = "198.18.9.0/24"  # originated by AS65002, never announced to us (limited propagation)


def agreement(expires_in: float = 3600.0, ca_id: str = "ca-1", ended: bool = False) -> Agreement:
    return Agreement(ca_id, PEER, "as65000", "bilateral", "sav-info", START + expires_in, ended)


def info(seq: int = 1, arrives_from: tuple[str, ...] = ("203.0.113.5",), ca_id: str = "ca-1") -> SavInfo:
    return SavInfo(ca_id, PEER, 65002, seq, START, (PEER_PREFIX, "bad/99"), arrives_from)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config(CONFIG.format(data_dir=tmp_path), tmp_path / "savd.toml")


@pytest.fixture
def parts(config: Config) -> tuple[StateStore, Monitor, ManualClock, CollabSource]:
    clock = ManualClock(START)
    store, monitor = StateStore(), Monitor(clock)
    store.apply(Announce("bgp-ls:test", (Interface("b1", "c1", external=True),
                                         Interface("b1", "c2", external=True))))
    store.apply(Announce("bmp:b1", (BgpPath("b1", "c1", "198.18.1.0/24", (65001,)),
                                    BgpPath("b1", "c2", "198.18.2.0/24", (65002,)))))
    return store, monitor, clock, CollabSource(store, monitor, lambda: config, clock)


def test_own_info_from_the_configuration(config: Config) -> None:
    assert own_info(config, 65002) == (("198.18.100.0/22",), ("203.0.113.6",))
    assert own_info(config, 65001) == (("198.18.100.0/22",), ())


def test_info_becomes_allowances_of_the_peer_source(parts: tuple[StateStore, Monitor, ManualClock,
                                                                 CollabSource],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    store, _, _, source = parts
    source.on_info(PEER, info())  # before any agreement: ignored
    assert store.snapshot().collab_allowances == ()
    source.on_agreement(PEER, agreement())
    with caplog.at_level(logging.WARNING, logger="savd.collab"):
        source.on_info(PEER, info(arrives_from=("203.0.113.5", "203.0.113.1", "192.0.2.9")))
    snap = store.snapshot()
    assert [(a.router, a.interface, a.prefix, a.expires_at) for a in snap.collab_allowances] == [
        ("b1", "c2", PEER_PREFIX, START + 3600.0)]
    assert snap.sources_of(snap.collab_allowances[0]) == {"collab:as65002"}
    logged = caplog.text
    assert "event=collab-unmapped peer=as65002 address='203.0.113.1'" in logged and "asn-mismatch" in logged
    assert "address='192.0.2.9'" in logged and "no-neighbor" in logged
    source.on_info(PEER, info(seq=0, arrives_from=()))  # older than the last: ignored
    assert len(store.snapshot().collab_allowances) == 1
    source.on_info(PEER, info(seq=2, ca_id="ca-other", arrives_from=()))  # another agreement: ignored
    assert len(store.snapshot().collab_allowances) == 1


def test_round_trip_efp_block_lifted_then_back_after_the_agreement_ends(
        config: Config, parts: tuple[StateStore, Monitor, ManualClock, CollabSource]) -> None:
    store, monitor, clock, source = parts
    engine = ConfigEngine(config, clock)

    def c2_prefixes() -> tuple[str, ...]:
        rule = engine(store.snapshot()).get("b1", "c2")
        assert rule is not None and rule.kind is ListKind.ALLOW
        return rule.prefixes

    assert c2_prefixes() == ("198.18.2.0/24",)  # EFP-uRPF: the peer's other prefix is blocked on c2
    source.on_agreement(PEER, agreement())
    source.on_info(PEER, info())
    assert c2_prefixes() == ("198.18.2.0/24", PEER_PREFIX)
    rule = engine(store.snapshot()).get("b1", "c2")
    assert rule is not None and rule.provenance[PEER_PREFIX] == ("collab:ca-1@as65002",)
    c1 = engine(store.snapshot()).get("b1", "c1")
    assert c1 is not None and PEER_PREFIX not in c1.prefixes  # only where the peer said it arrives

    source.on_agreement(PEER, agreement(ended=True))
    assert store.snapshot().collab_allowances == ()
    assert c2_prefixes() == ("198.18.2.0/24",)
    alarm = monitor.alarms.active("collab.agreement-ended")
    assert [(a.fields["peer"], a.fields["ca_id"], a.fields["reason"], str(a.severity)) for a in alarm] == [
        (PEER, "ca-1", "ended", "warning")]

    source.on_agreement(PEER, agreement(ca_id="ca-2"))  # a new agreement clears the alarm
    assert monitor.alarms.active("collab.agreement-ended") == []
    source.on_info(PEER, info(ca_id="ca-2"))
    assert c2_prefixes() == ("198.18.2.0/24", PEER_PREFIX)


def test_a_silently_lapsed_agreement_leaves_no_allowance(
        config: Config, parts: tuple[StateStore, Monitor, ManualClock, CollabSource]) -> None:
    store, monitor, clock, source = parts
    engine = ConfigEngine(config, clock)
    source.on_agreement(PEER, agreement(expires_in=60.0))
    source.on_info(PEER, info())
    rule = engine(store.snapshot()).get("b1", "c2")
    assert rule is not None and PEER_PREFIX in rule.prefixes
    clock.advance(60.0)
    # at recompute time, before anyone withdrew them: the expired allowances count for nothing
    assert len(store.snapshot().collab_allowances) == 1
    rule = engine(store.snapshot()).get("b1", "c2")
    assert rule is not None and rule.prefixes == ("198.18.2.0/24",)
    assert source.expire() == [PEER]
    assert store.snapshot().collab_allowances == ()
    [alarm] = monitor.alarms.active("collab.agreement-ended")
    assert alarm.fields["reason"] == "expired"
    assert source.expire() == []  # said once


def test_renewal_moves_the_expiry(parts: tuple[StateStore, Monitor, ManualClock, CollabSource]) -> None:
    store, _, _, source = parts
    source.on_agreement(PEER, agreement(expires_in=60.0))
    source.on_info(PEER, info())
    source.on_agreement(PEER, agreement(expires_in=7200.0))
    assert [a.expires_at for a in store.snapshot().collab_allowances] == [START + 7200.0]


def test_the_api_view_of_peers_agreements_and_allowances(
        parts: tuple[StateStore, Monitor, ManualClock, CollabSource]) -> None:
    store, _, clock, source = parts
    source.on_agreement(PEER, agreement(expires_in=60.0))
    source.on_info(PEER, info())
    snap = store.snapshot()
    view = collaboration_view(source.agreements, snap.collab_allowances, snap.version, clock.now())
    assert view["peers"] == [{"peer": PEER, "agreement": "ca-1", "state": "in-force", "allowances": 1}]
    assert view["agreements"][0]["state"] == "in-force" and view["allowances"][0]["live"] is True
    later = collaboration_view(source.agreements, snap.collab_allowances, snap.version, clock.now() + 60.0)
    assert later["peers"][0]["state"] == "expired" and later["allowances"][0]["live"] is False


def test_allowances_survive_the_journal_codec() -> None:
    a = CollabAllowance("b1", "c2", PEER_PREFIX, PEER, 65002, "ca-1", START + 60.0)
    change = ReplaceSource("collab:as65002", ("collab-allowance",), (a,))
    assert decode_change(encode_change(change)) == change


def ours(expires_in: float = 3600.0, ca_id: str = "ours-1", ended: bool = False) -> Agreement:
    """The agreement we initiated with the peer (it carries our SavInfo, not the peer's)."""
    return Agreement(ca_id, "as65000", PEER, "resilient", "sav-prefixes", START + expires_in, ended)


def test_both_ways_the_peer_agreement_carries_its_info_and_ours_never_touches_it(
        parts: tuple[StateStore, Monitor, ManualClock, CollabSource]) -> None:
    """Both savd initiate: two agreements with one peer, one per direction. Ours being made, renewed or
    ended neither drops nor refuses what the peer sent under its own; its end does withdraw them."""
    store, monitor, clock, source = parts

    def held() -> list[tuple[str, str, float]]:
        return [(a.interface, a.ca_id, a.expires_at) for a in store.snapshot().collab_allowances]

    source.on_agreement(PEER, agreement(expires_in=60.0))
    source.on_agreement(PEER, ours(expires_in=60.0))
    source.on_info(PEER, info())
    assert held() == [("c2", "ca-1", START + 60.0)]
    assert source.agreements[PEER].ca_id == "ca-1"  # the API shows the agreement the peer's word came under
    source.on_agreement(PEER, ours(expires_in=120.0))  # our renewal
    assert held() == [("c2", "ca-1", START + 60.0)]
    source.on_info(PEER, info(seq=2, arrives_from=()))  # still accepted under the peer's agreement
    assert held() == []
    source.on_info(PEER, info(seq=3))
    assert held() == [("c2", "ca-1", START + 60.0)]

    source.on_agreement(PEER, ours(expires_in=120.0, ended=True))  # ours ends: the peer's allowances stay
    assert held() == [("c2", "ca-1", START + 60.0)]
    [alarm] = monitor.alarms.active("collab.agreement-ended")
    assert (alarm.fields["ca_id"], alarm.fields["allowances"]) == ("ours-1", "0")
    source.on_agreement(PEER, agreement(expires_in=90.0))  # the peer renews its own: ours is still down
    assert held() == [("c2", "ca-1", START + 90.0)]
    assert len(monitor.alarms.active("collab.agreement-ended")) == 1
    source.on_agreement(PEER, ours(ca_id="ours-2"))  # a new one of ours: both directions up again
    assert monitor.alarms.active("collab.agreement-ended") == []

    clock.advance(90.0)  # the peer's lapses silently, ours is live: its allowances go all the same
    assert source.expire() == [PEER]
    assert held() == []
    [alarm] = monitor.alarms.active("collab.agreement-ended")
    assert (alarm.fields["ca_id"], alarm.fields["reason"]) == ("ca-1", "expired")
    assert source.expire() == []  # said once
    source.on_info(PEER, info(seq=4))
    assert held() == []  # not under an agreement in force
    assert source.agreements[PEER].ca_id == "ca-1"  # the last reported
