"""Topology graph: incremental updates per source, re-sync after reset, pseudonodes, border links."""

from __future__ import annotations

from appliance.model import Interface, Link
from appliance.sources.bgpls.decode import LsAnnounce, LsLink, LsNode, LsPrefix, LsWithdraw, NodeId
from appliance.sources.bgpls.graph import Topology


def nid(rid: str, asn: int = 65000, pseudo: str = "") -> NodeId:
    return NodeId(3, 0, asn, rid, "0.0.0.0", "0", pseudo)


R1, R2, R3 = nid("198.18.255.1"), nid("198.18.255.2"), nid("198.18.255.3")
N1, N2 = LsNode(R1, "r1", ("198.18.255.1",)), LsNode(R2, "r2")
L12 = LsLink(R1, R2, ("198.18.60.1",), ("198.18.60.2",), igp_metric=10, name="eth1")
L21 = LsLink(R2, R1, ("198.18.60.2",), ("198.18.60.1",), igp_metric=10, name="eth1")
P1 = LsPrefix(R1, "198.18.60.0/30", 1, metric=10)
P2 = LsPrefix(R2, "198.18.60.0/30", 1, metric=10)
P1H = LsPrefix(R1, "198.18.10.0/24", 1, metric=10)


def base(source: str = "a") -> Topology:
    t = Topology()
    t.apply_all(LsAnnounce(source, i) for i in (N1, N2, L12, L21, P1, P2, P1H))
    return t


def test_model_views() -> None:
    t = base()
    assert [r.name for r in t.routers()] == ["r1", "r2"]
    assert t.routers()[0].router_id == "198.18.255.1"
    assert t.links() == (
        Link("r1", "r2", "198.18.60.1", "198.18.60.2", 10),
        Link("r2", "r1", "198.18.60.2", "198.18.60.1", 10),
    )
    assert t.interfaces() == (
        Interface("r1", "eth1", ("198.18.60.1/30",)),
        Interface("r2", "eth1", ("198.18.60.2/30",)),
    )
    assert t.neighbours("r1") == ("r2",) and t.neighbours("r9") == ()
    assert t.routers_serving("198.18.10.7/32") == ("r1",)
    assert t.routers_serving("198.18.60.0/30") == ("r1", "r2")
    assert [i.router for i in t.interfaces_serving("198.18.60.0/30")] == ["r1", "r2"]
    assert t.to_dict()["links"][0]["border"] is False


def test_same_nlri_from_two_sources_is_one_fact_until_both_withdraw() -> None:
    t = base("a")
    v = t.version
    assert t.apply(LsAnnounce("b", L12)) is False and t.version == v
    assert len(t.ls_links()) == 2
    assert t.apply(LsWithdraw("a", LsLink(R1, R2, ("198.18.60.1",), ("198.18.60.2",)))) is False
    assert len(t.links()) == 2
    assert t.apply(LsWithdraw("b", L12)) is True
    assert t.links() == (Link("r2", "r1", "198.18.60.2", "198.18.60.1", 10),)
    assert t.apply(LsWithdraw("b", L12)) is False  # unknown withdraw is harmless


def test_attribute_change_is_a_change() -> None:
    t = base()
    assert (
        t.apply(
            LsAnnounce("a", LsLink(R1, R2, ("198.18.60.1",), ("198.18.60.2",), igp_metric=50, name="eth1"))
        )
        is True
    )
    assert t.links()[0].metric == 50 and len(t.links()) == 2


def test_restart_resync_sweeps_only_what_was_not_reannounced() -> None:
    t = base("a")
    before = t.to_dict()
    assert t.mark_stale("a") == 7
    for item in (N1, N2, L12, L21, P1, P2):  # P1H is gone after the restart
        t.apply(LsAnnounce("a", item))
    assert len(t) == 7  # re-announcements did not duplicate anything
    assert t.sweep_stale("a") == 1
    assert t.routers_serving("198.18.10.7/32") == ()
    after = t.to_dict()
    assert after["links"] == before["links"] and after["routers"] == before["routers"]


def test_withdraw_source_removes_exactly_that_source() -> None:
    t = base("a")
    t.apply(LsAnnounce("b", N1))
    assert t.withdraw_source("a") == 7
    assert [r.name for r in t.routers()] == ["r1"] and t.sources() == {"b"}


def test_lan_pseudonode_is_collapsed_into_router_links() -> None:
    pn = nid("198.18.255.1", pseudo="198.18.70.1")
    t = Topology()
    t.apply_all(
        LsAnnounce("a", i)
        for i in (
            LsLink(R1, pn, ("198.18.70.1",), (), igp_metric=5),
            LsLink(pn, R1),
            LsLink(R2, pn, ("198.18.70.2",), (), igp_metric=7),
            LsLink(pn, R2),
            LsLink(R3, pn, ("198.18.70.3",), (), igp_metric=9),
            LsLink(pn, R3),
        )
    )
    assert [r.name for r in t.routers()] == ["198.18.255.1", "198.18.255.2", "198.18.255.3"]
    assert t.neighbours("198.18.255.2") == ("198.18.255.1", "198.18.255.3")
    assert Link("198.18.255.2", "198.18.255.3", "198.18.70.2", "198.18.70.3", 7) in t.links()
    assert len(t.links()) == 6


def test_border_links_have_different_as_numbers() -> None:
    ext = nid("198.18.255.9", asn=65100)
    t = base()
    t.apply(LsAnnounce("a", LsLink(R1, ext, ("198.18.80.1",), ("198.18.80.2",), name="eth9")))
    (border,) = t.border_links()
    assert (border.local, border.remote) == ("r1", "198.18.255.9")
    assert border not in t.internal_links() and len(t.internal_links()) == 2
    assert {i.name: i.external for i in t.interfaces() if i.router == "r1"} == {"eth1": False, "eth9": True}


def test_duplicate_node_names_are_disambiguated() -> None:
    t = Topology()
    t.apply_all([LsAnnounce("a", LsNode(R1, "x")), LsAnnounce("a", LsNode(R2, "x"))])
    assert [r.name for r in t.routers()] == ["x@198.18.255.1", "x@198.18.255.2"]


def test_epe_link_joins_the_named_router_and_marks_the_border() -> None:
    bgp_r1 = NodeId(7, 0, 65000, "198.18.255.1")
    ext = NodeId(7, 0, 65100, "198.19.255.1")
    t = base()
    t.apply(LsAnnounce("a", LsLink(bgp_r1, ext, ("198.18.30.1",), ("198.18.30.2",), name="eth2")))
    assert [r.name for r in t.routers()] == ["r1", "r2"]  # ext is a peer across the border, not our router
    assert t.external_peers() == (("198.19.255.1", 65100),)
    (border,) = t.border_links()
    assert (border.local, border.remote, border.local_address) == ("r1", "198.19.255.1", "198.18.30.1")
    assert ("r1", "eth2", True) in {(i.router, i.name, i.external) for i in t.interfaces()}
    assert t.neighbours("r1") == ("198.19.255.1", "r2")
    from appliance.model import Role
    from appliance.sources.reports.records import RouterReport
    from appliance.sources.reports.tags import roles_from_topology

    assert roles_from_topology(t) == [RouterReport("r1", Role.BORDER, None, "bgp-ls")]


def test_ingest_stale_expiry_uses_the_given_clock() -> None:
    from appliance.sources.bgpls.ingest import TopologyIngest
    from appliance.speakers.exabgp import EndOfRib, SessionDown, SessionUp

    ing = TopologyIngest(topology=base("198.18.0.1"))
    assert ing.handle(SessionDown("198.18.0.1", "r1"), now=100.0) is False  # stale, not gone
    assert len(ing.topology.routers()) == 2
    assert ing.expire_stale(now=129.0, hold_s=30.0) == []
    assert ing.expire_stale(now=130.0, hold_s=30.0) == ["198.18.0.1"]
    assert ing.topology.routers() == () and ing.down_since == {}
    # a peer that comes back in time is not expired, and its End-of-RIB sweeps only what it dropped
    ing = TopologyIngest(topology=base("198.18.0.1"))
    ing.handle(SessionDown("198.18.0.1"), now=0.0)
    ing.handle(SessionUp("198.18.0.1"), now=5.0)
    assert ing.expire_stale(now=100.0, hold_s=30.0) == []
    assert ing.handle(EndOfRib("198.18.0.1", family="bgp-ls bgp-ls"), now=6.0) is True
    assert len(ing.topology) == 0 and ing.eor_seen == {"198.18.0.1"}


def test_model_facts_cover_every_kind() -> None:
    from appliance.model import IgpPrefix, PrefixReport, Router
    from appliance.sources.bgpls.ingest import model_facts
    from appliance.sources.reports.tags import encode_tag

    t = base()
    t.apply(LsAnnounce("a", LsPrefix(R1, "198.18.10.0/24", 1, metric=10, route_tags=(encode_tag(5),))))
    facts = model_facts(t)
    kinds = {type(f).__name__ for f in facts}
    assert kinds == {"Router", "Interface", "Link", "IgpPrefix", "PrefixReport"}
    assert PrefixReport("r1", "", "198.18.10.0/24", "5", source="bgp-ls") in facts
    assert (
        Router("r1", "198.18.255.1", 65000) in facts
        and IgpPrefix("r1", "198.18.10.0/24", 10, (encode_tag(5),)) in facts
    )


def test_ospf_external_routes_are_marked_external() -> None:
    """A redistributed route (OSPF External 1/2, NSSA 1/2) may be the Internet's: the border blocklist must
    not take it for internal space (issue 12 item 11)."""
    t = base()
    t.apply(LsAnnounce("a", LsPrefix(R1, "198.19.0.0/16", 4, metric=20)))
    external = {p.prefix: p.external for p in t.igp_prefixes() if p.router == "r1"}
    assert external == {"198.18.10.0/24": False, "198.18.60.0/30": False, "198.19.0.0/16": True}
