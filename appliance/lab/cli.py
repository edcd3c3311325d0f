"""`savd lab up|down|status|ping|list|exec`: run containerlab topologies in network namespaces (and the
lab kit's `init|enforcers|traffic`, appliance/lab/kit/cli.py).

The shell around `appliance.lab.Lab`: argument parsing, finding the running instance from the state
folder, and printing. A lab started here is detached (it outlives the command) and is found again by
its lab name (and --prefix when several instances of one lab run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from appliance.lab.errors import LabError
from appliance.lab.kit import cli as kit_cli
from appliance.lab.reach import check_reachability
from appliance.lab.runner import Lab
from appliance.lab.state import DEFAULT_ROOT, list_instances
from appliance.lab.topology import load_topology
from appliance.shipped import shipped

DEFAULT_TOPOLOGY = Path("containerlab/sav-basic/sav-basic.clab.yml")


def default_topology() -> Path:
    """containerlab/sav-basic from the working directory, else the one savd ships (appliance.shipped)."""
    return DEFAULT_TOPOLOGY if DEFAULT_TOPOLOGY.exists() else shipped(DEFAULT_TOPOLOGY)


def register(subparsers: Any) -> None:
    lab = subparsers.add_parser(
        "lab",
        help="run a containerlab topology with real FRR in network namespaces (no Docker)",
        description="Run a containerlab topology (.clab.yml) without Docker: one network namespace per "
        "node, a veth pair per link, FRR daemons per router from its bound daemons file and frr.conf, "
        "then the nodes' exec lines. Needs root. Labs started here keep running until `savd lab down`.",
    )
    sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    up = sub.add_parser(
        "up",
        help="start a lab and wait until it has converged",
        description="Start a lab, then wait for the conditions of converged.json next to "
        "the topology file (OSPF/BGP neighbours, routes), if there is one. A topology with savd.* "
        "router labels that has not been through `savd lab init` (its routers bind no flowspec.conf, "
        "like sav-basic) runs on init's output, written with the instance's prefix into the instance "
        "folder (the path is printed: savd.toml, reports.yaml, rpki.json, converged.json).",
    )
    _topology_args(up)
    up.add_argument("--no-wait", action="store_true", help="do not wait for convergence")
    up.add_argument(
        "--timeout", type=float, default=90.0, metavar="S", help="convergence timeout (default 90)"
    )
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop a lab: kill its processes, delete namespaces and veths")
    _topology_args(down)
    down.add_argument(
        "--keep-logs",
        type=Path,
        metavar="DIR",
        help="copy the nodes' FRR daemon logs to DIR/<node>/ before the state folder is deleted",
    )
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="nodes, daemons (alive?), OSPF/OSPFv3/BGP neighbour states")
    _topology_args(status)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(func=cmd_status)

    ping = sub.add_parser(
        "ping",
        help="reachability matrix between the lab's hosts (IPv4 and IPv6 pings)",
        description="Ping every host (node without FRR) from every other host, IPv4 and IPv6, and print "
        "a received/sent matrix. Exit code 0 only when every packet arrived.",
    )
    _topology_args(ping)
    ping.add_argument("--count", type=int, default=2, help="packets per pair (default 2)")
    ping.set_defaults(func=cmd_ping)

    lst = sub.add_parser("list", help="running lab instances recorded in the state folder")
    lst.add_argument("--state-root", type=Path, default=DEFAULT_ROOT, help=argparse.SUPPRESS)
    lst.set_defaults(func=cmd_list)

    ex = sub.add_parser(
        "exec",
        help="run a command inside a node",
        description="Run CMD in NODE's network namespace. `vtysh` reaches the node's FRR daemons and "
        "container paths of binds (/etc/frr/...) are mapped to the files in the lab folder, as in the "
        "topology's exec lines. Example: savd lab exec r1 -- vtysh -c 'show ip ospf neighbor'",
    )
    ex.add_argument("--topo", type=Path, help="topology file (default: the only running lab, else sav-basic)")
    ex.add_argument("--prefix", help="instance prefix when several instances of the lab run")
    ex.add_argument("--state-root", type=Path, default=DEFAULT_ROOT, help=argparse.SUPPRESS)
    ex.add_argument("node", help="node name, as in the topology file")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    ex.set_defaults(func=cmd_exec)

    kit_cli.register(sub)


def _topology_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("topology", nargs="?", type=Path, help=f"topology file (default: {DEFAULT_TOPOLOGY})")
    parser.add_argument("--topo", type=Path, dest="topo", help="same as the TOPOLOGY argument")
    parser.add_argument(
        "--prefix",
        help="instance prefix (namespace names are PREFIX-NODE); "
        "default: random for up, the only running instance otherwise",
    )
    parser.add_argument("--state-root", type=Path, default=DEFAULT_ROOT, help=argparse.SUPPRESS)


def _topology_path(args: argparse.Namespace) -> Path:
    return Path(args.topology or args.topo or default_topology())


def _running(args: argparse.Namespace) -> Lab:
    """The recorded instance to act on. Without --prefix: the topology's lab (the only running lab when
    no topology is named, else sav-basic), preferring instances started by `savd lab up` over those
    owned by a running process (a test, `savd demo`), which act on their own labs."""
    explicit = getattr(args, "topology", None) or args.topo
    name = load_topology(explicit, check_files=False).name if explicit else None
    if name is None and not args.prefix and len(list_instances(args.state_root)) != 1:
        name = load_topology(default_topology(), check_files=False).name
    prefix = args.prefix
    if prefix is None:
        found = list_instances(args.state_root, name)
        detached = [s for s in found if s.owner_pid is None]
        if len(detached) == 1 or (not detached and len(found) == 1):
            prefix = (detached or found)[0].prefix
    return Lab.attach(name, prefix=prefix, state_root=args.state_root)


def _fail(exc: LabError) -> int:
    print(f"savd lab: error: {exc}", file=sys.stderr)
    return 1


def cmd_up(args: argparse.Namespace) -> int:
    try:
        lab = Lab.load(_topology_path(args), prefix=args.prefix, state_root=args.state_root)
        live = [
            s for s in list_instances(args.state_root, lab.name) if s.owner_pid is None and not s.is_stale()
        ]
        if live and not args.prefix:
            running = ", ".join(s.prefix for s in live)
            raise LabError(
                f"lab {lab.name} is already running (prefix {running}); `savd lab down` it first, "
                "or pass --prefix to start another instance"
            )
        print(
            f"starting lab {lab.name} (prefix {lab.prefix}, {len(lab.topology.nodes)} nodes, "
            f"{len(lab.topology.links)} links)"
        )
        lab.up(detach=True)
    except LabError as exc:
        return _fail(exc)
    if lab.kit_dir is not None:
        print(f"savd lab init: the appliance parts and savd's files are in {lab.kit_dir} "
              f"(savd.toml for namespaces {lab.prefix}-*)")
    if not args.no_wait:
        try:
            waited = lab.wait_converged(timeout_s=args.timeout)
            print(f"converged after {waited:.1f} s")
        except LabError as exc:
            print(
                f"savd lab: not converged: {exc}\nthe lab is still up: inspect it with `savd lab status`, "
                "stop it with `savd lab down`",
                file=sys.stderr,
            )
            return 1
    print(
        f"lab {lab.name} is up. Inspect: savd lab status | savd lab exec NODE -- CMD | "
        f"stop: savd lab down{_prefix_hint(lab, args)}"
    )
    return 0


def _prefix_hint(lab: Lab, args: argparse.Namespace) -> str:
    return f" --prefix {lab.prefix}" if args.prefix else ""


def cmd_down(args: argparse.Namespace) -> int:
    try:
        lab = _running(args)
        lab.down(keep_logs=args.keep_logs)
    except LabError as exc:
        return _fail(exc)
    print(f"lab {lab.name} (prefix {lab.prefix}) is down: processes killed, namespaces and veths deleted")
    if args.keep_logs:
        print(f"daemon logs kept in {args.keep_logs}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        status = _running(args).status()
    except LabError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(format_status(status))
    return 0 if status["phase"] == "up" else 1


def format_status(status: dict[str, Any]) -> str:
    """Human-readable status: one block per node."""
    lines = [
        f"lab {status['name']}  prefix {status['prefix']}  phase {status['phase']}  ({status['topology']})"
    ]
    for name, node in status["nodes"].items():
        daemons = " ".join(f"{d}:{'up' if v['alive'] else 'DEAD'}" for d, v in node["daemons"].items())
        present = "" if node["present"] else "  (namespace missing)"
        lines.append(f"{name:<6} {node['role']:<5} netns {node['netns']:<14} {daemons}{present}")
        for proto in ("ospf", "ospf6", "bgp"):
            for nbr in node.get(proto, []):
                extra = f"AS{nbr['remote_as']}" if "remote_as" in nbr else nbr.get("interface", "")
                lines.append(f"         {proto:<6} {nbr['neighbor']:<20} {extra:<9} {nbr['state']}")
    return "\n".join(lines)


def cmd_ping(args: argparse.Namespace) -> int:
    try:
        result = check_reachability(_running(args), count=args.count)
    except LabError as exc:
        return _fail(exc)
    print(result.matrix())
    print("every host reaches every host (IPv4 and IPv6)" if result.ok else "LOSS: see the matrix above")
    return 0 if result.ok else 1


def cmd_list(args: argparse.Namespace) -> int:
    instances = list_instances(args.state_root)
    if not instances:
        print("no lab running")
    for s in instances:
        stale = " (stale)" if s.is_stale() else ""
        owner = f"owner pid {s.owner_pid}" if s.owner_pid else "detached"
        print(
            f"{s.name:<16} prefix {s.prefix}  phase {s.phase}{stale}  {owner}  nodes {len(s.nodes)}  "
            f"{s.topology}"
        )
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        print(
            "savd lab exec: give a command after --, e.g. savd lab exec h1 -- ping -c1 198.18.3.10",
            file=sys.stderr,
        )
        return 2
    args.topology = None
    try:
        lab = _running(args)
        argv = lab.exec_argv(args.node, cmd)
    except LabError as exc:
        return _fail(exc)
    try:
        return subprocess.run(argv, env=lab.node_env(args.node), check=False).returncode
    except OSError as exc:
        return _fail(LabError(f"node {args.node}: {exc}", node=args.node))
