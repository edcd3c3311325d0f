"""Speaker events -> topology: the glue between ExaBgpSpeaker and Topology, and the facts for state.

Re-synchronisation rule (why the graph is neither flapped nor duplicated when ExaBGP or a session
restarts): a SessionDown marks that peer's facts stale instead of deleting them; the peer's
re-announcements refresh them; its End-of-RIB sweeps whatever was not re-announced. A peer that stays
down longer than the owner's hold time is expired by `expire_stale(now, hold_s)` (fail open: its facts,
and the rules they supported, go). Time is an input (`now`), never read here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from appliance.model import IgpPrefix, Interface, Link, PrefixReport, Router, RouterRole
from appliance.sources.bgpls.decode import BGPLS_FAMILIES, decode_update
from appliance.sources.bgpls.graph import Topology
from appliance.sources.reports.tags import reports_from_topology, roles_from_topology
from appliance.speakers.events import EndOfRib, SessionDown, SessionUp, SpeakerEvent, UpdateReceived

log = logging.getLogger(__name__)

TopologyFact = Router | Interface | Link | IgpPrefix | PrefixReport | RouterRole
TOPOLOGY_KINDS = ("router", "interface", "link", "igp-prefix", "report", "role")
MAX_SKIPPED = 100  # the last skipped NLRI kept for `savd topology show`/monitoring; each is logged anyway


@dataclass
class TopologyIngest:
    topology: Topology = field(default_factory=Topology)
    skipped: list[str] = field(default_factory=list)
    eor_seen: set[str] = field(default_factory=set)
    down_since: dict[str, float] = field(default_factory=dict)

    def handle(self, event: SpeakerEvent, now: float = 0.0) -> bool:
        """Apply one speaker event; True when the graph changed."""
        before = self.topology.version
        if isinstance(event, UpdateReceived):
            events, errors = decode_update(event)
            self.skipped = (self.skipped + errors)[-MAX_SKIPPED:]
            self.topology.apply_all(events)
        elif isinstance(event, SessionDown):
            n = self.topology.mark_stale(event.neighbor)
            self.eor_seen.discard(event.neighbor)
            self.down_since.setdefault(event.neighbor, now)
            log.info("event=bgpls-peer-down peer=%s stale=%d reason=%r", event.neighbor, n, event.reason)
        elif isinstance(event, SessionUp):
            self.down_since.pop(event.neighbor, None)
        elif isinstance(event, EndOfRib) and event.family in BGPLS_FAMILIES:
            n = self.topology.sweep_stale(event.neighbor)
            self.eor_seen.add(event.neighbor)
            log.info("event=bgpls-eor peer=%s swept=%d", event.neighbor, n)
        return self.topology.version != before

    def expire(self, peer: str) -> int:
        """The peer stayed down: drop its facts for good."""
        self.eor_seen.discard(peer)
        self.down_since.pop(peer, None)
        return self.topology.withdraw_source(peer)

    def expire_stale(self, now: float, hold_s: float) -> list[str]:
        """Expire every peer down for at least `hold_s`; returns the peers expired."""
        gone = sorted(p for p, t in self.down_since.items() if now - t >= hold_s)
        for peer in gone:
            n = self.expire(peer)
            log.warning("event=bgpls-peer-expired peer=%s down_s=%.0f removed=%d", peer, hold_s, n)
        return gone


def model_facts(topology: Topology) -> tuple[TopologyFact, ...]:
    """The graph as state facts (kinds TOPOLOGY_KINDS), for `ReplaceSource("bgp-ls:<speaker>", ...)`:
    routers, interfaces, links, IGP prefixes, the source-prefix reports carried in route tags, and the
    border role of every router with an AS-border link."""
    return (
        *topology.routers(),
        *topology.interfaces(),
        *topology.links(),
        *topology.igp_prefixes(),
        *reports_from_topology(topology),
        *roles_from_topology(topology),
    )
