"""FRR `show bgp link-state link-state json` (FRR >= 10.7) -> the same typed records as ExaBGP's.

Why: FRR's own BGP-LS table is the second corpus (FRR topotests, data/bgp-ls) and, on newer FRR, a
second live source. IS-IS system IDs ("0000.0000.0002.00") are normalised to ExaBGP's form (12 hex
digits, pseudonode byte apart) so both producers name a node identically.
Must not: keep state (a pure function of the document).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from appliance.sources.bgpls.decode import LsItem, LsLink, LsNode, LsPrefix, NodeId

_SYSID = re.compile(r"^([0-9a-fA-F]{4})\.([0-9a-fA-F]{4})\.([0-9a-fA-F]{4})(?:\.([0-9a-fA-F]{2}))?$")


def _node(desc: Mapping[str, Any], protocol: int, instance: int) -> NodeId:
    rid = str(desc.get("igpRouterId", ""))
    if not rid:
        raise ValueError("node descriptor without igpRouterId")
    pseudo = ""
    m = _SYSID.match(rid)
    if m:
        rid = "".join(m.group(i) for i in (1, 2, 3)).lower()
        pseudo = "" if m.group(4) in (None, "00") else m.group(4)
    return NodeId(protocol=protocol, instance=instance, asn=int(desc.get("asNumber", 0)), router_id=rid,
                  area=str(desc.get("ospfAreaId", "")), bgp_ls_id=str(desc.get("bgpLsId", "0")),
                  pseudonode=pseudo)


def item_from_frr(nlri: Mapping[str, Any], attrs: Mapping[str, Any]) -> LsItem:
    """One FRR path (its "nlri" and "linkStateAttrs") -> a typed record."""
    kind = nlri.get("nlriType")
    protocol = int(nlri.get("protocolId", 0))
    instance = int(nlri.get("identifier", 0))
    local = _node(nlri.get("localNodeDescriptors", {}), protocol, instance)
    if kind == "node":
        return LsNode(node=local, name=str(attrs.get("nodeName", "")))
    if kind == "link":
        ld = nlri.get("linkDescriptors", {})
        v4 = ("ipv4InterfaceAddress", "ipv4NeighborAddress")
        v6 = ("ipv6InterfaceAddress", "ipv6NeighborAddress")
        mine = tuple(str(ipaddress.ip_address(ld[k])) for k in (v4[0], v6[0]) if k in ld)
        theirs = tuple(str(ipaddress.ip_address(ld[k])) for k in (v4[1], v6[1]) if k in ld)
        mt = ld.get("multiTopologyId")
        return LsLink(local=local, remote=_node(nlri.get("remoteNodeDescriptors", {}), protocol, instance),
                      local_addresses=mine, remote_addresses=theirs,
                      local_id=int(ld.get("linkLocalId", 0)), remote_id=int(ld.get("linkRemoteId", 0)),
                      mt_ids=(int(mt),) if mt is not None else (), igp_metric=int(attrs.get("igpMetric", 0)),
                      te_metric=int(attrs.get("teMetric", 0)))
    if kind in ("ipv4Prefix", "ipv6Prefix"):
        pd = nlri.get("prefixDescriptors", {})
        mt = pd.get("multiTopologyId")
        prefix = str(ipaddress.ip_network(pd["ipReachabilityInformation"], strict=False))
        return LsPrefix(node=local, prefix=prefix, ospf_route_type=int(pd.get("ospfRouteType", 0)),
                        mt_ids=(int(mt),) if mt is not None else (), metric=int(attrs.get("prefixMetric", 0)))
    raise ValueError(f"unsupported nlriType {kind!r}")


def items_from_frr_table(doc: Mapping[str, Any]) -> tuple[list[LsItem], list[str]]:
    """Every best path of the table -> records; the second list names entries that were skipped."""
    items: list[LsItem] = []
    errors: list[str] = []
    routes = doc.get("routes", {})
    for key, paths in (routes.items() if isinstance(routes, Mapping) else []):
        for path in paths if isinstance(paths, list) else []:
            if not isinstance(path, Mapping) or not path.get("bestpath", True) or "nlri" not in path:
                continue
            try:
                items.append(item_from_frr(path["nlri"], path.get("linkStateAttrs") or {}))
            except (ValueError, KeyError, TypeError) as exc:
                errors.append(f"{key}: {type(exc).__name__}: {exc}")
    return items, errors
