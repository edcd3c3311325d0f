"""`savd lab init | enforcers up|down | traffic`: the lab kit's commands (docs/lab-kit.md).

Registered under `savd lab` by appliance/lab/cli.py. Argument parsing and printing only; the work is in
labels/render (init), enforcers and flows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from appliance.lab.errors import LabError

INIT_HELP = (
    "From a containerlab topology with savd.* labels (docs/lab-kit.md) and the routers' own frr.conf, "
    "write a lab savd runs on into OUT: the topology with the savd binds and exec lines, per router "
    "frr.conf (own lines + iBGP to the appliance + ip table range) and flowspec.conf, savd.toml, "
    "reports.yaml, rpki.json and converged.json. A missing or inconsistent label is refused, naming "
    "node and label."
)


def register(sub: Any) -> None:
    init = sub.add_parser("init", description=INIT_HELP,
                          help="savd.toml, reports, FRR stanzas, converged.json from a labelled topology")
    init.add_argument("topology", type=Path, help="containerlab .clab.yml with savd.* labels")
    init.add_argument("--out", type=Path, help="output folder (default: <topology folder>/<lab>-savd)")
    init.add_argument("--prefix", help="namespace prefix the lab will run under (default: the lab's name)")
    init.add_argument("--api-port", type=int, default=8180, help="savd API port on 127.0.0.1 (default 8180)")
    init.add_argument("--rtr-port", type=int, default=8282,
                      help="StayRTR port on 127.0.0.1 (`savd rpki serve --port`, default 8282)")
    init.add_argument("--speaker", choices=("exabgp", "gobgp"), default="exabgp",
                      help="what pushes the FlowSpec to the routers: one ExaBGP (default) or one gobgpd per "
                           "router, started by savd (BGP-LS is received by ExaBGP either way)")
    init.set_defaults(func=cmd_init)

    enf = sub.add_parser(
        "enforcers", help="start or stop one savd-enforcer per router of a running lab",
        description="Start (up) or stop (down) one savd-enforcer per [[enforcer]] of a savd config in a "
        "running lab: in the router's namespace, with the node's vtysh (--vtysh 'vtysh --vty_socket "
        "/var/run/frr/<prefix>-<router>'), --configure-frr, the group mapping savd writes under its "
        "data_dir, and a work folder and log per router under --workdir. PIDs are recorded there, so "
        "`down` stops exactly those processes.")
    enf.add_argument("action", choices=("up", "down"))
    enf.add_argument("--config", type=Path, required=True, help="savd.toml (its [[enforcer]] list)")
    enf.add_argument("--lab", help="lab name (default: the only running lab)")
    enf.add_argument("--prefix", help="instance prefix when several instances of the lab run")
    enf.add_argument("--workdir", type=Path,
                     help="work folders, logs and PIDs (default: <data_dir>/enforcers)")
    enf.add_argument("--router", action="append", default=[], help="only this router (repeatable)")
    enf.add_argument("--state-root", type=Path, default=None, help=argparse.SUPPRESS)
    enf.set_defaults(func=cmd_enforcers)

    tr = sub.add_parser(
        "traffic", help="send legitimate and spoofed traffic classes, count at receivers, verdict table",
        description="Send the classes of a traffic file (YAML, docs/lab-kit.md: from, source, to, dst, kind "
        "legit|spoofed|spoofed-passes, count) through a running lab: IPv4 UDP with hping3, IPv6 ping from "
        "the source address. Packets are counted in the receiver's namespace (nftables). Prints a verdict "
        "table; exit code 1 when a legitimate packet was lost or a spoofed one delivered.")
    tr.add_argument("file", type=Path, help="traffic file (YAML)")
    tr.add_argument("--topo", type=Path, help="topology file of the running lab (default: the only one)")
    tr.add_argument("--prefix", help="instance prefix when several instances of the lab run")
    tr.add_argument("--parallel", action="store_true", help="send classes in parallel where they do not mix")
    tr.add_argument("--json", action="store_true", help="print the results as JSON")
    tr.add_argument("--state-root", type=Path, default=None, help=argparse.SUPPRESS)
    tr.set_defaults(func=cmd_traffic)


def cmd_init(args: argparse.Namespace) -> int:
    from appliance.lab.kit.labels import read_plan
    from appliance.lab.kit.render import KitOptions, write_kit
    from appliance.lab.topology import load_topology

    try:
        topo = load_topology(args.topology)
        plan = read_plan(topo)
        out = args.out or topo.directory / f"{topo.name}-savd"
        prefix = args.prefix or topo.name
        written = write_kit(plan, out, KitOptions(prefix=prefix, api_port=args.api_port,
                                                  rtr_port=args.rtr_port, speaker=args.speaker))
    except LabError as exc:
        print(f"savd lab init: error: {exc}", file=sys.stderr)
        return 1
    out = out.resolve()
    print(f"lab {topo.name}: {len(plan.routers)} savd routers ({', '.join(r.name for r in plan.routers)}), "
          f"appliance {plan.appliance} ({plan.appliance4}), AS {plan.asn}, {len(plan.subnets)} subnets; "
          f"{len(written)} files in {out}")
    topo_out = out / topo.path.name
    print("next:\n"
          f"  savd lab up {topo_out} --prefix {prefix}\n"
          f"  savd rpki serve {out / 'rpki.json'} --port {args.rtr_port} &\n"
          f"  savd lab enforcers up --config {out / 'savd.toml'} --lab {topo.name} --prefix {prefix}\n"
          f"  SAVD_API_TOKEN=... savd run --config {out / 'savd.toml'}")
    return 0


def cmd_enforcers(args: argparse.Namespace) -> int:
    from appliance.config import ConfigError, load_config
    from appliance.lab.kit.enforcers import enforcers_down, enforcers_up
    from appliance.lab.runner import Lab
    from appliance.lab.state import DEFAULT_ROOT

    try:
        config = load_config(args.config)
    except (ConfigError, OSError) as exc:
        print(f"savd lab enforcers: {args.config}: {exc}", file=sys.stderr)
        return 1
    root = args.workdir or config.appliance.data_dir / "enforcers"
    try:
        if args.action == "down":
            stopped = enforcers_down(root)
            listed = ", ".join(f"{r} (pid {p})" for r, p in sorted(stopped.items()))
            print(f"stopped {len(stopped)} enforcers: {listed}" if stopped
                  else f"no enforcer running from {root}")
            return 0
        lab = Lab.attach(args.lab, prefix=args.prefix, state_root=args.state_root or DEFAULT_ROOT)
        pids = enforcers_up(config, lab, root, args.router)
    except LabError as exc:
        print(f"savd lab enforcers: error: {exc}", file=sys.stderr)
        return 1
    print(f"started {len(pids)} enforcers in lab {lab.name} (prefix {lab.prefix}): "
          + ", ".join(f"{r} (pid {p}, log {root / (r + '.log')})" for r, p in pids.items()))
    where = f" --workdir {root}" if args.workdir else ""
    print(f"stop: savd lab enforcers down --config {args.config}{where}")
    return 0


def cmd_traffic(args: argparse.Namespace) -> int:
    import json

    from appliance.lab.cli import _running
    from appliance.lab.kit.flows import load_flows, report, send_flow, send_flows
    from appliance.lab.state import DEFAULT_ROOT

    args.topology = None
    args.state_root = args.state_root or DEFAULT_ROOT
    try:
        lab = _running(args)
        flows = load_flows(args.file, lab)
        counts = send_flows(lab, flows) if args.parallel else [send_flow(lab, f) for f in flows]
    except LabError as exc:
        print(f"savd lab traffic: error: {exc}", file=sys.stderr)
        return 1
    results = list(zip(flows, counts, strict=True))
    lines, ok = report(results)
    if args.json:
        print(json.dumps([{"label": f.label, "from": f.sender, "source": f.source, "to": f.receiver,
                           "dst": f.dst, "spoofed": f.spoofed, "passes": f.passes, "sent": f.count,
                           "delivered": n, "ok": n == f.expected} for f, n in results], indent=1))
    else:
        print(f"lab {lab.name} (prefix {lab.prefix}), {len(flows)} classes from {args.file}:")
        print("\n".join(lines))
        print("verdict: " + ("PASS" if ok else "FAIL (see WRONG above)"))
    return 0 if ok else 1
