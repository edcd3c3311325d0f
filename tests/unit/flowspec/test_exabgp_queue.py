"""ExaBGP's outgoing queue through exabgp_queue.keep_latest_change: an NLRI changed several times in one
round leaves only its latest change to send (stock ExaBGP 5.0.15 sends the withdraw after the re-announce
that followed it when the re-announce joins an attribute bucket opened earlier in the round)."""

from __future__ import annotations

from typing import Any

import pytest
from exabgp.bgp.message import Action
from exabgp.bgp.message.update.attribute import Attributes, Origin
from exabgp.bgp.message.update.attribute.community.extended import TrafficRate
from exabgp.bgp.message.update.attribute.community.extended.communities import ExtendedCommunities
from exabgp.bgp.message.update.nlri.flow import Flow, Flow4Source
from exabgp.logger import log as exabgp_log
from exabgp.protocol.family import AFI, SAFI
from exabgp.protocol.ip import IP
from exabgp.rib.change import Change
from exabgp.rib.outgoing import OutgoingRIB

from appliance.speakers.exabgp_queue import keep_latest_change

exabgp_log.disable()     # ExaBGP's logger needs its daemon's setup


class Patched(OutgoingRIB):   # type: ignore[misc]
    """OutgoingRIB with the launcher's patch, leaving ExaBGP's own class untouched for other tests."""


keep_latest_change(Patched)
keep_latest_change(Patched)   # idempotent: a second patch must not wrap the first


def flow(source: str, action: Action) -> Flow:
    nlri = Flow(AFI.ipv4, SAFI.flow_ip, action)
    nlri.add(Flow4Source(IP.pton(source), 24))
    return nlri


def attributes(rate: float | None) -> Attributes:
    """ORIGIN, plus a traffic-rate community when `rate` is given (0.0: discard)."""
    attrs = Attributes()
    attrs[Origin.ID] = Origin(Origin.IGP)
    if rate is not None:
        comms = ExtendedCommunities()
        comms.add(TrafficRate(0, rate))
        attrs[comms.ID] = comms
    return attrs


DISCARD, LIMIT, NONE = attributes(0.0), attributes(12500.0), attributes(None)


def announce(rib: Any, source: str, attrs: Attributes) -> None:
    rib.add_to_rib(Change(flow(source, Action.ANNOUNCE), attrs))


def withdraw(rib: Any, source: str) -> None:
    rib.add_to_rib(Change(flow(source, Action.WITHDRAW), NONE))


def sent(rib: Any) -> list[tuple[str, str]]:
    """(NLRI, announce|withdraw) in the order the round's UPDATEs go out."""
    return [(str(n).removeprefix("flow source-ipv4 "),
             "announce" if n.action == Action.ANNOUNCE else "withdraw")
            for update in rib.updates(False) for n in update.nlris]


def final(rib: Any) -> dict[str, str]:
    """What the router holds after the round, NLRI by NLRI (the last UPDATE for each wins)."""
    return dict(sent(rib))


def rib_holding(cls: type, *sources: str) -> Any:
    rib = cls(True, [(AFI.ipv4, SAFI.flow_ip)])
    for s in sources:
        announce(rib, s, DISCARD)
    sent(rib)   # the earlier round
    return rib


def test_stock_exabgp_sends_the_withdraw_after_the_reannounce() -> None:
    """The upstream defect the launcher exists for; if this fails, ExaBGP fixed it: drop exabgp_queue."""
    rib = rib_holding(OutgoingRIB, "198.18.1.0")
    announce(rib, "198.18.2.0", DISCARD)
    withdraw(rib, "198.18.1.0")
    announce(rib, "198.18.1.0", DISCARD)
    assert final(rib)["198.18.1.0/24"] == "withdraw"


def test_a_withdrawn_then_restored_rule_is_announced() -> None:
    rib = rib_holding(Patched, "198.18.1.0")
    announce(rib, "198.18.2.0", DISCARD)
    withdraw(rib, "198.18.1.0")
    announce(rib, "198.18.1.0", DISCARD)
    assert sent(rib) == [("198.18.2.0/24", "announce"), ("198.18.1.0/24", "announce")]


def test_a_restored_rule_with_another_action_is_announced_with_it() -> None:
    rib = rib_holding(Patched, "198.18.1.0")
    announce(rib, "198.18.3.0", LIMIT)
    withdraw(rib, "198.18.1.0")
    announce(rib, "198.18.1.0", LIMIT)
    updates = list(rib.updates(False))
    held = {str(n).removeprefix("flow source-ipv4 "): (n.action, u.attributes.index())
            for u in updates for n in u.nlris}
    assert held["198.18.1.0/24"] == (Action.ANNOUNCE, LIMIT.index())
    assert len(updates) == 2


@pytest.mark.parametrize("steps, expected", [
    ((("a", "198.18.1.0"), ("w", "198.18.1.0")), {"198.18.1.0/24": "withdraw"}),       # announce, withdraw
    ((("w", "198.18.1.0"), ("a", "198.18.1.0")), {"198.18.1.0/24": "announce"}),
    ((("a", "198.18.4.0"), ("w", "198.18.1.0"), ("a", "198.18.1.0"), ("w", "198.18.1.0")),
     {"198.18.4.0/24": "announce", "198.18.1.0/24": "withdraw"}),
])
def test_the_last_change_of_a_round_is_what_the_router_holds(steps: tuple[tuple[str, str], ...],
                                                              expected: dict[str, str]) -> None:
    rib = rib_holding(Patched, "198.18.1.0")
    for op, source in steps:
        (announce(rib, source, DISCARD) if op == "a" else withdraw(rib, source))
    assert final(rib) == expected
