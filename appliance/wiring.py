"""The real components `savd run` plugs into the daemon, in start order (stopped in reverse).

1. the report sources (appliance/sources/reports): the [reports] file and `savd report`'s store;
2. the RPKI source (appliance/sources/rpki): [rpki] caches and files -> VRP/ASPA facts;
3. the BGP-LS source (appliance/sources/bgpls): topology from the speakers' BGP-LS peers;
4. the path source (appliance/sources/paths): [[bmp]] stations -> routers' eBGP paths;
5. the speakers (appliance/speakers/sessions.py): BGP sessions; BGP-LS events go to source 3, every new
   rule set goes out as FlowSpec;
6. the enforcer poller (appliance/enforcer/poller.py): counters and installed rules back from the routers;
7. the drift repair (appliance/speakers/repair.py): what each router holds against what savd intends;
8. the collaboration (appliance/collab/component.py): agreements with other ASes' savd over mutual TLS;
   what they send becomes allowances in the state store.

Every source writes the same state store; the engine reads one snapshot of it completed by the
configuration (appliance/sources/assemble.py), as `savd topology show` and `savd report list` do.
"""

from __future__ import annotations

from appliance.collab import component as collab
from appliance.context import Component, DaemonContext
from appliance.enforcer import poller
from appliance.sources.bgpls import component as bgpls
from appliance.sources.paths import component as paths
from appliance.sources.reports import component as reports
from appliance.sources.rpki import component as rpki
from appliance.speakers import repair, sessions


def components(ctx: DaemonContext) -> list[Component]:
    """The configured components, in start order; a source the configuration does not use is left out."""
    out: list[Component] = [*reports.components(ctx)]
    rpki_source = rpki.component(ctx)
    if rpki_source is not None:
        out.append(rpki_source)
    bgpls_source = bgpls.component(ctx)
    if bgpls_source is not None:
        out.append(bgpls_source)
    path_source = paths.component(ctx)
    if path_source is not None:
        out.append(path_source)
    listeners = {name: bgpls_source.handle for name in bgpls_source.speakers()} if bgpls_source else {}
    speaker_set = sessions.component(ctx, listeners)
    if speaker_set is not None:
        out.append(speaker_set)
    enforcer_poller = poller.factory(ctx)
    if enforcer_poller is not None:
        out.append(enforcer_poller)
    drift = repair.component(ctx, speaker_set)
    if drift is not None:
        out.append(drift)
    collaboration = collab.component(ctx)
    if collaboration is not None:
        out.append(collaboration)
    return out


__all__ = ["components"]
