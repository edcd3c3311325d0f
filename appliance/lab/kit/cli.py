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
    init.set_defaults(func=cmd_init)


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
                                                  rtr_port=args.rtr_port))
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
