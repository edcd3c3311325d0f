"""The files `savd lab init` writes for a `KitPlan`, and writing them.

Pure renderers (plan in, text out) and one `write_kit` that puts them into the output folder:

    OUT/<lab>.clab.yml      the topology with every savd router's binds and exec lines added
    OUT/<router>/frr.conf   the router's own frr.conf plus the savd stanza (`bgp_stanza`)
    OUT/<router>/flowspec.conf   FlowSpec AFs toward the appliance, applied after start (`flowspec_stanza`)
    OUT/<router>/daemons    only when the topology binds none (from the IGPs frr.conf uses)
    OUT/savd.toml           speakers and peers for every router, [reports], [[enforcer]], engine roles
    OUT/reports.yaml        the hosts' savd.subnets at their router interfaces
    OUT/rpki.json           ROAs for the subnets and savd.prefixes (StayRTR's input; `savd rpki serve`)
    OUT/converged.json      IGP adjacencies and eBGP sessions every router must have (subset match)

The exporter runs from the installed package (`appliance/lab/bgpls_exporter.py`, resolved when init
runs), bound read-only at EXPORTER_PATH, so exec lines hold no host path. Must not start anything.
"""

from __future__ import annotations

import importlib.resources
import ipaddress
import json
import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appliance.lab.errors import LabError
from appliance.lab.kit.frrconf import KIT_MARK, FrrConf, read_frr_conf
from appliance.lab.kit.labels import ROLE, ROUTER_ROLES, KitPlan, KitRouter
from appliance.lab.topology import FRR_CONF_PATH, FRR_DAEMONS_PATH, Topology
from appliance.model import Vrp
from rpki.localcache import write_stayrtr_json

FLOWSPEC_PATH = "/etc/frr/flowspec.conf"
EXPORTER_PATH = "/usr/local/lib/savd/bgpls_exporter.py"
BGPLS_PORT = 1179
TABLE_RANGE = "ip table range 100000 150000"
_KIT_EXEC_MARKS = (FLOWSPEC_PATH, "bgpls_exporter.py")


@dataclass(frozen=True, slots=True)
class KitOptions:
    """Run-time choices the labels do not make."""

    prefix: str                  # namespace prefix the lab runs under (`savd lab up --prefix`)
    api_port: int = 8180
    rtr_port: int = 8282
    rtr_version: int = 1
    data_dir: str = "data"       # relative to savd.toml
    speaker: str = "exabgp"      # what pushes the FlowSpec (`savd lab init --speaker`): exabgp | gobgp


SPEAKERS = ("exabgp", "gobgp")


def exporter_source() -> Path:
    """bgpls_exporter.py of the installed savd package."""
    return Path(str(importlib.resources.files("appliance.lab").joinpath("bgpls_exporter.py")))


# --- FRR ------------------------------------------------------------------------------------------------


def _appliance_addrs(plan: KitPlan) -> list[str]:
    return [str(a) for a in (plan.appliance4, plan.appliance6) if a is not None]


def bgp_stanza(plan: KitPlan, router: KitRouter) -> list[str]:
    """The lines appended to the router's frr.conf: the table range the enforcer needs and the iBGP
    sessions from the loopback to the appliance (unicast with add-path, so savd sees every path)."""
    app4, app6 = str(plan.appliance4), plan.appliance6
    lines = [f"{KIT_MARK} iBGP to the appliance {plan.appliance} (FlowSpec AFs: flowspec.conf) ---"]
    if not router.frr.has_table_range:
        lines += ["! FRR 8.4's zebra crashes under FlowSpec bursts; a table range smaller than bgpd's",
                  "! FlowSpec chunk keeps FlowSpec out of zebra (savd-enforcer installs it in nftables)",
                  TABLE_RANGE]
    lines.append(f"router bgp {router.asn}")
    if router.frr.bgp_asn is None:
        lines += [f" bgp router-id {router.loopback4}", " no bgp ebgp-requires-policy",
                  " no bgp default ipv4-unicast"]
    for addr, fam in ((app4, "IPv4"), (str(app6) if app6 else None, "IPv6")):
        if addr is None:
            continue
        lines += [f" neighbor {addr} remote-as {router.asn}",
                  f" neighbor {addr} description {plan.appliance} (savd appliance, {fam})",
                  f" neighbor {addr} update-source lo",
                  f" neighbor {addr} timers connect 5"]
    lines += [" address-family ipv4 unicast", f"  neighbor {app4} activate",
              f"  neighbor {app4} addpath-tx-all-paths", " exit-address-family"]
    if app6 is not None:
        lines += [" address-family ipv6 unicast", f"  neighbor {app6} activate",
                  f"  neighbor {app6} addpath-tx-all-paths", " exit-address-family"]
    return [*lines, "exit"]


def flowspec_stanza(plan: KitPlan, router: KitRouter) -> list[str]:
    """FlowSpec AFs toward the appliance, applied after FRR is up (`vtysh -f`): with FRR 8.4 a flowspec
    AF in bgpd's startup config leaves every BGP next hop invalid. IPv6 FlowSpec rides the IPv4 session
    too (savd's ExaBGP pushes both families over one session)."""
    app4 = str(plan.appliance4)
    v6 = [f"  neighbor {a} activate" for a in _appliance_addrs(plan)]
    return [f"! savd lab init: FlowSpec toward the appliance {plan.appliance}, applied after start by the "
            f"exec line `vtysh -f {FLOWSPEC_PATH}`", f"router bgp {router.asn}",
            " address-family ipv4 flowspec", f"  neighbor {app4} activate", " exit-address-family",
            " address-family ipv6 flowspec", *v6, " exit-address-family", "exit", "end"]


def frr_conf(plan: KitPlan, router: KitRouter) -> str:
    own = list(router.frr.lines)
    while own and own[-1].strip() == "!":
        own.pop()
    return "\n".join([*own, "!", *bgp_stanza(plan, router), "!", "end"]) + "\n"


def daemons_file(frr: FrrConf) -> str:
    """An FRR daemons file enabling what frr.conf uses (bgpd and staticd always)."""
    on = ["bgpd", "staticd", *(f"{igp}d" for igp in sorted(frr.igps))]
    lines = ["# savd lab init: the topology bound no daemons file", *(f"{d}=yes" for d in sorted(on)),
             "vtysh_enable=yes", 'zebra_options="  -A 127.0.0.1 -s 90000000"']
    lines += [f'{d}_options=" -A {"::1" if d == "ospf6d" else "127.0.0.1"}"' for d in sorted(on)]
    return "\n".join(lines) + "\n"


def exec_lines(plan: KitPlan, router: KitRouter) -> list[str]:
    """The router's kit exec lines: FlowSpec AFs, then the BGP-LS exporter in the background."""
    args = ["--vtysh-ns", "auto", "--peer", str(plan.appliance4), "--peer-port", str(BGPLS_PORT),
            "--local-as", str(router.asn), "--local-address", str(router.loopback4), "--name", router.name]
    return [f"vtysh -f {FLOWSPEC_PATH}",
            f"sh -c 'python3 \"$0\" {shlex.join(args)} &' {EXPORTER_PATH}"]


# --- topology -------------------------------------------------------------------------------------------


def topology_doc(plan: KitPlan, src: Path, out: Path, daemons: Mapping[str, bool]) -> dict[str, Any]:
    """The input topology document with relative binds rebased on `out` and every savd router's kit
    binds and exec lines set (old kit lines replaced, so init runs again on its own output)."""
    doc: dict[str, Any] = yaml.safe_load(src.read_text(encoding="utf-8"))
    topo = doc["topology"]
    layers = [topo.get("defaults") or {}, *(topo.get("kinds") or {}).values(),
              *(topo.get("groups") or {}).values(), *(topo.get("nodes") or {}).values()]
    for layer in layers:
        if isinstance(layer, dict) and isinstance(layer.get("binds"), list):
            layer["binds"] = [_rebase(b, src.parent, out) for b in layer["binds"]]
    exporter = exporter_source()
    for router in plan.routers:
        node = topo["nodes"].setdefault(router.name, {}) or {}
        topo["nodes"][router.name] = node
        binds = [b for b in node.get("binds") or []
                 if str(b).split(":")[1] not in (FRR_CONF_PATH, FLOWSPEC_PATH, EXPORTER_PATH)
                 and not (daemons[router.name] and str(b).split(":")[1] == FRR_DAEMONS_PATH)]
        if daemons[router.name]:
            binds.append(f"{router.name}/daemons:{FRR_DAEMONS_PATH}")
        binds += [f"{router.name}/frr.conf:{FRR_CONF_PATH}", f"{router.name}/flowspec.conf:{FLOWSPEC_PATH}",
                  f"{exporter}:{EXPORTER_PATH}:ro"]
        node["binds"] = binds
        kept = [e for e in node.get("exec") or [] if not any(m in str(e) for m in _KIT_EXEC_MARKS)]
        node["exec"] = [*kept, *exec_lines(plan, router)]
    return doc


def _rebase(bind: Any, src_dir: Path, out: Path) -> Any:
    if not isinstance(bind, str) or ":" not in bind:
        return bind
    host, rest = bind.split(":", 1)
    path = Path(host).expanduser()
    if path.is_absolute():
        return bind
    target = (src_dir / path).resolve()
    if os.path.commonpath([target, out.resolve()]) == "/":
        return f"{target}:{rest}"  # nothing in common: an absolute path reads better than ../../..
    return f"{os.path.relpath(target, out.resolve())}:{rest}"


# --- savd -----------------------------------------------------------------------------------------------


def _q(value: str) -> str:
    return json.dumps(value)


def savd_toml(plan: KitPlan, opts: KitOptions) -> str:
    """savd's configuration: one speaker pushing FlowSpec to every router (ExaBGP, or with `opts.speaker`
    gobgp one gobgpd per router that savd starts), one ExaBGP listening for the BGP-LS exporters (port
    1179), both in the appliance node's namespace; the reports file; StayRTR on loopback; engine roles and
    external neighbours; one enforcer per router in its namespace."""
    if opts.speaker not in SPEAKERS:
        raise LabError(f"FlowSpec speaker {opts.speaker!r} is not one of {', '.join(SPEAKERS)}")
    app, app4 = plan.appliance, str(plan.appliance4)
    netns = f"{opts.prefix}-{app}"
    out = [f"# savd configuration for lab {plan.topology.name}, written by `savd lab init` from",
           f"# {plan.topology.path.name}. Namespaces are {opts.prefix}-<node>: `savd lab up --prefix "
           f"{opts.prefix}`.", "",
           "[appliance]", f"asn = {plan.asn}", f"router_id = {_q(app4)}", f"data_dir = {_q(opts.data_dir)}",
           'log = "info"', "", "[api]", f'listen = "127.0.0.1:{opts.api_port}"',
           'token_env = "SAVD_API_TOKEN"',
           "", f"# FlowSpec to every router (port 179) and BGP-LS from their exporters ({app4}:{BGPLS_PORT})",
           "[[speaker]]", f'name = "{app}-fs"', f"type = {_q(opts.speaker)}", f"netns = {_q(netns)}"]
    for r in plan.routers:
        out += ["", "  [[speaker.peers]]", f"  address = {_q(str(r.loopback4))}", f"  asn = {r.asn}",
                f"  router = {_q(r.name)}", '  families = ["ipv4-flowspec", "ipv6-flowspec"]',
                f"  local_address = {_q(app4)}"]
    out += ["", "[[speaker]]", f'name = "{app}-ls"', 'type = "exabgp"', f"netns = {_q(netns)}",
            f'listen = "{app4}:{BGPLS_PORT}"']
    for r in plan.routers:
        out += ["", "  [[speaker.peers]]", f"  address = {_q(str(r.loopback4))}", f"  asn = {r.asn}",
                f"  router = {_q(r.name)}", '  families = ["bgp-ls"]', f"  local_address = {_q(app4)}",
                "  passive = true"]
    out += ["", "[reports]", 'file = "reports.yaml"', "", "[rpki]", "stale_after_s = 3600",
            "expire_after_s = 7200", "", "[[rpki.cache]]", 'name = "stayrtr"', 'host = "127.0.0.1"',
            f"port = {opts.rtr_port}", "preference = 1", f"version = {opts.rtr_version}", "",
            "[engine]", 'algorithm = "auto"', "", "[engine.default]", 'mode = "drop"']
    for r in plan.routers:
        out += ["", "[[engine.router]]", f"name = {_q(r.name)}", f"role = {_q(r.role.value)}"]
    for r in plan.routers:
        for n in r.neighbors:
            out += ["", "[[engine.neighbor]]", f"router = {_q(r.name)}", f"interface = {_q(n.interface)}",
                    f"asn = {n.asn}", f"relationship = {_q(n.relationship.value)}",
                    f"address = {_q(n.address)}"]
    if plan.inspectors:
        out += ["", "# suspicious sources (POST /api/v1/suspects) are steered through these hosts",
                "[steering]", 'fallback = "accept"']
    for i in plan.inspectors:   # one instance per address family: a redirect's next hop is of its family
        out += ["", "[[steering.inspector]]", f"name = {_q(i.name)}", f"address = {_q(str(i.address4))}",
                f"capacity = {i.capacity:g}"]
        if i.address6 is not None:
            out += ["", "[[steering.inspector]]", f"name = {_q(i.name + '-v6')}",
                    f"address = {_q(str(i.address6))}", f"capacity = {i.capacity:g}"]
    out += ["", "[flowspec]", "max_rules_per_router = 2000", "force = false"]
    for r in plan.routers:
        out += ["", "[[enforcer]]", f"router = {_q(r.name)}", f"netns = {_q(f'{opts.prefix}-{r.name}')}"]
    return "\n".join(out) + "\n"


def reports_doc(plan: KitPlan) -> dict[str, Any]:
    """The reports file: per subnet attachment its prefixes (a multi-homed subnet: one entry per router
    interface, same ID, flag multihomed)."""
    subnets = []
    for s in plan.subnets:
        for a in s.attachments:
            entry: dict[str, Any] = {"id": s.id}
            if s.is_multihomed:
                entry["flags"] = ["multihomed"]
            entry["prefixes"] = [str(p) for p in a.prefixes]
            entry["attachments"] = [{"router": a.router, "interface": a.interface}]
            subnets.append(entry)
    return {"subnets": subnets}


def vrps(plan: KitPlan) -> list[Vrp]:
    """ROAs: subnets exactly, other originated prefixes up to /24 (IPv4) or /64 (IPv6)."""
    subnet_prefixes = {p for s in plan.subnets for a in s.attachments for p in a.prefixes}
    out = []
    for prefix, asn in plan.vrps:
        floor = 24 if prefix.version == 4 else 64
        longest = prefix.prefixlen if prefix in subnet_prefixes else max(prefix.prefixlen, floor)
        out.append(Vrp(str(prefix), longest, asn))
    return out


def converged_doc(plan: KitPlan, confs: Mapping[str, FrrConf]) -> dict[str, Any]:
    """What "converged" means per FRR node (subset of vtysh JSON): a Full OSPF/OSPFv3 adjacency or an Up
    IS-IS adjacency on every link where both ends run the IGP non-passive, every eBGP session
    Established, and on savd routers the routes to the hosts' subnets."""
    doc: dict[str, dict[str, Any]] = {}
    topo = plan.topology
    for link in topo.links:
        a, b = confs.get(link.a.node), confs.get(link.b.node)
        if a is None or b is None:
            continue
        ia, ib = a.interface(link.a.interface), b.interface(link.b.interface)
        if ia is None or ib is None:
            continue
        for mine, me, other in ((link.a.node, ia, b), (link.b.node, ib, a)):
            rid = _router_id(other)
            peer_if = ib if me is ia else ia
            node = doc.setdefault(mine, {})
            if me.is_adjacent("ospf") and peer_if.is_adjacent("ospf") and rid:
                node.setdefault("show ip ospf neighbor json", {"neighbors": {}})["neighbors"][rid] = \
                    [{"converged": "Full"}]
            if me.is_adjacent("ospf6") and peer_if.is_adjacent("ospf6") and rid:
                node.setdefault("show ipv6 ospf6 neighbor json", {"neighbors": []})["neighbors"].append(
                    {"neighborId": rid, "state": "Full"})
            if me.is_adjacent("isis") and peer_if.is_adjacent("isis"):
                node.setdefault("show isis neighbor json", {"areas": [{"circuits": []}]})["areas"][0][
                    "circuits"].append(_isis_adjacency(me.name, other))
    for name, conf in confs.items():
        if conf.ebgp_neighbors:
            doc.setdefault(name, {})["show bgp neighbors json"] = {
                addr: {"bgpState": "Established"} for addr, _ in conf.ebgp_neighbors}
    routed = {r.name for r in plan.routers if r.frr.igps & {"ospf", "ospf6", "isis"}}
    outside = [p for p, asn in plan.vrps if asn != plan.asn]  # what the external nodes originate
    subnet_prefixes = {p for s in plan.subnets for a in s.attachments for p in a.prefixes}
    own = [p for p, asn in plan.vrps if asn == plan.asn and p not in subnet_prefixes]  # savd.prefixes
    savd_routers = {r.name for r in plan.routers}
    for name, conf in sorted(confs.items()):  # external FRR nodes peering with the domain learn its prefixes
        if name not in savd_routers and any(ras == plan.asn for _, ras in conf.ebgp_neighbors):
            for p in own:
                cmd = f"show {'ip' if p.version == 4 else 'ipv6'} route {p} json"
                doc.setdefault(name, {})[cmd] = {str(p): [{"installed": True}]}
    for r in sorted(routed):
        for p in outside:
            cmd = f"show {'ip' if p.version == 4 else 'ipv6'} route {p} json"
            doc.setdefault(r, {})[cmd] = {str(p): [{"installed": True}]}
    for s in plan.subnets:
        for att in s.attachments:
            for r in sorted(routed - {att.router}):
                for p in att.prefixes:
                    cmd = f"show {'ip' if p.version == 4 else 'ipv6'} route {p} json"
                    doc.setdefault(r, {})[cmd] = {str(p): [{"installed": True}]}
    return {n: doc[n] for n in sorted(doc)}


def _isis_adjacency(interface: str, peer: FrrConf) -> dict[str, str]:
    """One Up IS-IS adjacency as `show isis neighbor json` prints it (FRR 8.4 and later: areas ->
    circuits -> {adj, interface, state}). `adj` is the neighbour's dynamic hostname, known only when its
    frr.conf sets `hostname` (else FRR advertises the machine's name)."""
    adj = {"interface": interface, "state": "Up"}
    if peer.hostname:
        adj["adj"] = peer.hostname
    return adj


def _router_id(conf: FrrConf) -> str:
    if conf.router_id:
        return conf.router_id
    v4 = [i.ip for i in conf.loopback if isinstance(i, ipaddress.IPv4Interface)]
    return str(v4[0]) if v4 else ""


# --- writing --------------------------------------------------------------------------------------------


def write_kit(plan: KitPlan, out: Path, opts: KitOptions) -> list[Path]:
    """Write every kit file under `out` (created); the paths written. LabError when `out` would
    overwrite the topology's own files."""
    src = plan.topology.path
    out = out.resolve()
    if out == src.parent.resolve():
        raise LabError(f"--out {out} is the topology's own folder: init would overwrite its routers' "
                       "frr.conf; choose another folder")
    written: list[Path] = []

    def put(rel: str, text: str) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)

    daemons = {r.name: r.daemons is None for r in plan.routers}
    for r in plan.routers:
        put(f"{r.name}/frr.conf", frr_conf(plan, r))
        put(f"{r.name}/flowspec.conf", "\n".join(flowspec_stanza(plan, r)) + "\n")
        if daemons[r.name]:
            put(f"{r.name}/daemons", daemons_file(r.frr))
    doc = topology_doc(plan, src, out, daemons)
    header = (f"# Written by `savd lab init` from {src.name}; edit that file and run init again.\n"
              f"# Run: savd lab up {out / src.name} --prefix {opts.prefix}\n")
    put(src.name, header + yaml.safe_dump(doc, sort_keys=False, width=200))
    written += write_savd_files(plan, out, opts)
    confs = _frr_confs(plan)
    put("converged.json", json.dumps(converged_doc(plan, confs), indent=2) + "\n")
    return written


def write_savd_files(plan: KitPlan, out: Path, opts: KitOptions) -> list[Path]:
    """What savd and StayRTR read: savd.toml, reports.yaml and rpki.json under `out` (part of `write_kit`;
    alone, for a lab already up from init's output, e.g. with the ports of one run)."""
    out.mkdir(parents=True, exist_ok=True)
    config = out / "savd.toml"
    config.write_text(savd_toml(plan, opts), encoding="utf-8")
    reports = out / "reports.yaml"
    reports.write_text(f"# Source-prefix reports of lab {plan.topology.name} (savd lab init: savd.subnets)\n"
                       + yaml.safe_dump(reports_doc(plan), sort_keys=False, default_flow_style=None),
                       encoding="utf-8")
    rpki = out / "rpki.json"
    write_stayrtr_json(rpki, vrps(plan))
    return [config, reports, rpki]


def is_kit_source(topo: Topology) -> bool:
    """The topology carries savd.* router labels but has not been through init: some savd router binds
    no flowspec.conf (init's output binds one on every router). `savd lab up` runs init on it first."""
    return any(n.label(ROLE) in ROUTER_ROLES and n.bind_for(FLOWSPEC_PATH) is None for n in topo.nodes)


def _frr_confs(plan: KitPlan) -> dict[str, FrrConf]:
    """Every FRR node's frr.conf facts (savd routers from the plan, the others read if readable)."""
    confs = {r.name: r.frr for r in plan.routers}
    for node in plan.topology.nodes:
        path = node.bind_for(FRR_CONF_PATH)
        if node.name not in confs and path is not None:
            try:
                confs[node.name] = read_frr_conf(path)
            except (OSError, UnicodeError):
                continue
    return confs


def normalized(lines: Iterable[str]) -> set[str]:
    """Config lines without comments, descriptions and blank lines, whitespace collapsed (comparisons)."""
    return {" ".join(line.split()) for line in lines
            if line.strip() and not line.strip().startswith("!") and " description " not in line}
