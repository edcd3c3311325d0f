"""The collaboration component of `savd run`: the protocol (service.py: mutual TLS, agreements, SavInfo)
and the receiving side (sources/collab.py: allowances in the state store, the agreement alarm) joined.

Built only when [collaboration] has a `listen` (appliance/collab/config.py). What we send a peer is
`CollabSource.own_info` (our [collaboration] prefixes, our `local_address` on the links toward its AS);
what a peer sends becomes allowances through `CollabSource.on_info`. The protocol's state (agreements,
sequence numbers) lives in <data_dir>/collab, so a restart keeps both.
"""

from __future__ import annotations

import logging

from appliance.collab.model import Agreement
from appliance.collab.service import CollabService
from appliance.context import DaemonContext
from appliance.sources.collab import CollabSource

log = logging.getLogger(__name__)

__all__ = ["CollabComponent", "component"]


class CollabComponent:
    """Starts the receiving side first (its expiry loop), then the protocol; stops in reverse."""

    name = "collaboration"

    def __init__(self, source: CollabSource, service: CollabService) -> None:
        self.source, self.service = source, service

    async def start(self, ctx: DaemonContext) -> None:
        await self.source.start(ctx)
        await self.service.start()
        c = self.service.config
        log.info("event=collab-listening host=%s port=%d name=%s peers=%s", c.listen_host, c.listen_port,
                 c.name, ",".join(p.name for p in c.peers) or "-")

    async def stop(self) -> None:
        await self.service.stop()
        await self.source.stop()

    async def end(self, peer: str) -> Agreement | None:
        """Revoke the collaboration with `peer` (service.revoke): None if no agreement was in force."""
        return await self.service.revoke(peer)

    async def allow(self, peer: str) -> bool:
        """Undo `end`: whether `peer` was revoked."""
        return self.service.allow(peer)


def component(ctx: DaemonContext) -> CollabComponent | None:
    """The component when the configuration has the protocol; the API then lists its agreements."""
    protocol = ctx.config.collaboration.protocol
    if protocol is None:
        return None
    source = CollabSource.of(ctx)
    state_dir = ctx.config.appliance.data_dir / "collab"
    state_dir.mkdir(parents=True, exist_ok=True)
    service = CollabService(protocol, source.on_info, source.on_agreement, ctx.monitor.clock.now,
                            state_dir=state_dir, own_info=source.own_info)
    made = CollabComponent(source, service)
    ctx.agreements = lambda: source.agreements
    ctx.end_agreement = made.end
    ctx.allow_peer = made.allow
    return made
