"""Speaker events -> topology: the glue between ExaBgpSpeaker and Topology.

Re-synchronisation rule (why the graph is neither flapped nor duplicated when ExaBGP or a session
restarts): a SessionDown marks that peer's facts stale instead of deleting them; the peer's
re-announcements refresh them; its End-of-RIB sweeps whatever was not re-announced. If the peer does
not come back, the owner calls `expire(peer)` (fail open: its facts, and the rules they supported, go).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from appliance.speakers.bgpls import BGPLS_FAMILIES, decode_update
from appliance.speakers.exabgp import EndOfRib, SessionDown, SpeakerEvent, UpdateReceived
from appliance.topology.graph import Topology

log = logging.getLogger(__name__)


@dataclass
class TopologyIngest:
    topology: Topology = field(default_factory=Topology)
    skipped: list[str] = field(default_factory=list)
    eor_seen: set[str] = field(default_factory=set)

    def handle(self, event: SpeakerEvent) -> bool:
        """Apply one speaker event; True when the graph changed."""
        before = self.topology.version
        if isinstance(event, UpdateReceived):
            events, errors = decode_update(event)
            self.skipped.extend(errors)
            self.topology.apply_all(events)
        elif isinstance(event, SessionDown):
            n = self.topology.mark_stale(event.neighbor)
            self.eor_seen.discard(event.neighbor)
            log.info("event=bgpls-peer-down peer=%s stale=%d reason=%r", event.neighbor, n, event.reason)
        elif isinstance(event, EndOfRib) and event.family in BGPLS_FAMILIES:
            n = self.topology.sweep_stale(event.neighbor)
            self.eor_seen.add(event.neighbor)
            log.info("event=bgpls-eor peer=%s swept=%d", event.neighbor, n)
        return self.topology.version != before

    def expire(self, peer: str) -> int:
        """The peer stayed down: drop its facts for good."""
        self.eor_seen.discard(peer)
        return self.topology.withdraw_source(peer)
