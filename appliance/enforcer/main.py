"""`savd-enforcer`: run the node-side FlowSpec -> nftables enforcer, or inspect one.

    savd-enforcer run --node r1 --asn 65000 [--configure-frr --vtysh "vtysh -N r1"] \\
                      [--group 7=eth1 | --groups-file groups.json] [--http 127.0.0.1:9180]
    savd-enforcer plan --updates recorded.jsonl [--group 7=eth1]   # print the nft text (dry run)
    savd-enforcer frr-config --asn 65000                            # print FRR's lines for the receiver
    savd-enforcer counters [--url http://127.0.0.1:9180 | --file counters.json]

Run it inside the router's network namespace (`ip netns exec r1 savd-enforcer run ...`) or pass
--netns. `run` needs root and `ip`, `nft` (and, with the sidecar, `unshare` and `nsenter`) on PATH; it
checks before touching anything. Exit codes are savd's (appliance/errors.py): 0 ok, 1 problems found,
2 bad arguments or configuration, 4 not root or a program missing, 5 FRR, nft or ExaBGP failed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from appliance.cli_common import configure_logging, examples, run_handler
from appliance.enforcer import groupmap
from appliance.enforcer.httpd import serve
from appliance.enforcer.nftplan import PlanOptions, render_full
from appliance.enforcer.node import (
    NodeError,
    Sidecar,
    VethPair,
    configure_frr,
    frr_commands,
    frr_has_neighbor,
    frr_interface_state,
    unconfigure_frr,
)
from appliance.enforcer.recording import replay
from appliance.enforcer.service import EnforcerOptions, EnforcerService
from appliance.errors import ExitCode, HostError

log = logging.getLogger("appliance.enforcer")


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _interface(text: str) -> str:
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if iface.network.prefixlen == iface.max_prefixlen:
        raise argparse.ArgumentTypeError(f"{text}: give the address with its prefix length, e.g. /30")
    return text


def _groups(args: argparse.Namespace) -> dict[int, tuple[str, ...]]:
    return groupmap.merge(*(groupmap.parse_flag(g) for g in args.group or ()))


def _plan_options(args: argparse.Namespace, exempt: tuple[str, ...] = ()) -> PlanOptions:
    return PlanOptions(table=args.table, shard_size=args.shard_size, exempt=exempt,
                       sample_group=args.sample_group)


def _nflog_group(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"NFLOG group {value} is not in 0..65535")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="savd-enforcer", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=examples(
            'ip netns exec r1 savd-enforcer run --node r1 --asn 65000 --configure-frr --vtysh "vtysh -N r1" '
            "--group 7=eth1",
            "savd-enforcer plan --updates recorded.jsonl --group 7=eth1",
            "savd-enforcer counters --url http://127.0.0.1:9180",
        ) + "\n\nexit codes: 0 ok, 1 problems found, 2 bad arguments, 4 not root or a program missing,\n"
            "  5 FRR, nft or ExaBGP failed")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--group", action="append", metavar="ID=IFNAME[,IFNAME]",
                       help="interface-set group ID -> local interfaces (repeatable)")
        p.add_argument("--table", default="savd_enforcer", help="nftables table name (family inet)")
        p.add_argument("--shard-size", type=int, default=1024, help="max elements per nft set")
        p.add_argument("--sample-group", type=_nflog_group, metavar="N",
                       help="monitor (traffic-action sample): also log matched packets to NFLOG group N "
                            "(10/s per route); default: counted only")

    run = sub.add_parser(
        "run", help="peer with the local FRR and enforce its FlowSpec in nftables",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=examples(
            'ip netns exec r1 savd-enforcer run --node r1 --asn 65000 --configure-frr --vtysh "vtysh -N r1" '
            "--group 7=eth1 --group 8=eth2",
            "savd-enforcer run --node r1 --asn 65000 --netns r1 --groups-file /etc/savd/groups.json"))
    common(run)
    run.add_argument("--node", required=True, help="this router's name (in counters and logs)")
    run.add_argument("--asn", type=int, required=True, help="FRR's AS (the receiver peers iBGP)")
    run.add_argument("--groups-file", type=Path, help="group mapping file, re-read when it changes")
    run.add_argument("--frr-address", type=_interface, default="198.18.254.1/30",
                     help="FRR's end of the in-node veth; the /30 must be unused in the node (checked)")
    run.add_argument("--exa-address", type=_interface, default="198.18.254.2/30",
                     help="the receiver's end (the BGP neighbour FRR gets)")
    run.add_argument("--frr-ifname", default="savd-fs-frr")
    run.add_argument("--exa-ifname", default="savd-fs-exa")
    run.add_argument("--no-sidecar", action="store_true",
                     help="the receiver address is reachable already; create no sidecar namespace/veth")
    run.add_argument("--configure-frr", action="store_true", help="add FRR's receiver neighbour via vtysh")
    run.add_argument("--vtysh", default="vtysh", help="vtysh command line, e.g. 'vtysh -N r1'")
    run.add_argument("--netns", help="run nft, ip and ExaBGP in this namespace instead of the current one")
    run.add_argument("--workdir", type=Path,
                     help="ExaBGP config and socket (default /run/savd-enforcer/NODE)")
    run.add_argument("--http", type=_hostport, default=("127.0.0.1", 9180), metavar="HOST:PORT")
    run.add_argument("--no-http", action="store_true")
    run.add_argument("--counters-file", type=Path, help="write the counters snapshot here every tick")
    run.add_argument("--reconcile-s", type=float, default=5.0, help="drift check / snapshot period")
    run.add_argument("--record", type=Path, help="append every received event (JSON lines) for replay")
    run.add_argument("--reconfigure-after-s", type=float, default=30.0,
                     help="with --configure-frr: re-apply FRR's lines when the session stays down this long")
    run.add_argument("--frr-watch-s", type=float, default=1.0,
                     help="with --configure-frr: how often to check that bgpd still has the neighbour")
    run.set_defaults(func=cmd_run)

    plan = sub.add_parser("plan", help="print the nft text for recorded ExaBGP JSON updates (dry run)",
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog=examples("savd-enforcer plan --updates recorded.jsonl --group 7=eth1",
                                          "savd-enforcer plan --updates recorded.jsonl --status"))
    common(plan)
    plan.add_argument("--updates", type=Path, required=True,
                      help="ExaBGP JSON lines or an enforcer --record file")
    plan.add_argument("--status", action="store_true", help="print route states as JSON instead")
    plan.set_defaults(func=cmd_plan)

    frr = sub.add_parser("frr-config", help="print the vtysh lines that feed FRR's FlowSpec to the receiver",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog=examples("savd-enforcer frr-config --asn 65000",
                                         "savd-enforcer frr-config --asn 65000 --receiver 198.18.254.6"))
    frr.add_argument("--asn", type=int, required=True)
    frr.add_argument("--receiver", default="198.18.254.2")
    frr.set_defaults(func=cmd_frr_config)

    counters = sub.add_parser("counters", help="print a running enforcer's counters",
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=examples("savd-enforcer counters",
                                              "savd-enforcer counters --file /run/r1/counters.json --json"))
    src = counters.add_mutually_exclusive_group()
    src.add_argument("--url", default="http://127.0.0.1:9180")
    src.add_argument("--file", type=Path)
    counters.add_argument("--json", action="store_true", help="print the raw /counters document")
    counters.set_defaults(func=cmd_counters)
    return parser


def cmd_plan(args: argparse.Namespace) -> int:
    service = EnforcerService(EnforcerOptions(node="plan", asn=1, frr_address="", exa_address="",
                                              workdir=Path("."), groups=_groups(args),
                                              plan=_plan_options(args)))
    try:
        lines = args.updates.read_text().splitlines()
    except OSError as exc:
        print(f"savd-enforcer plan: {args.updates}: {exc.strerror}", file=sys.stderr)
        return 2
    for lineno, event in replay(lines):
        if isinstance(event, str):
            print(f"{args.updates}:{lineno}: {event}", file=sys.stderr)
        else:
            service.handle(event)
    plan = service.plan(quiet=True)   # a recording is complete: no catch-all waits for its accepts
    if args.status:
        print(json.dumps([dataclasses.asdict(s) for s in plan.statuses], indent=1))
    else:
        sys.stdout.write(render_full(plan))
    return 0


def cmd_frr_config(args: argparse.Namespace) -> int:
    print("\n".join(frr_commands(args.asn, args.receiver)))
    return 0


def cmd_counters(args: argparse.Namespace) -> int:
    try:
        if args.file:
            doc = json.loads(args.file.read_text())
        else:
            with urllib.request.urlopen(args.url.rstrip("/") + "/counters", timeout=10) as resp:
                doc = json.loads(resp.read())
    except (OSError, ValueError) as exc:
        print(f"savd-enforcer counters: {exc}", file=sys.stderr)
        return ExitCode.EXTERNAL
    if args.json:
        print(json.dumps(doc, sort_keys=True))
        return 0
    for rule in doc.get("rules", []):
        print(f"{rule['state']:9} {rule['packets']:>10} pkts {rule['dropped_packets']:>10} dropped  "
              f"{rule['action']:<14} {','.join(rule['interfaces']):<12} {rule['nlri']}")
    return 0


def required_programs(args: argparse.Namespace) -> list[str]:
    """The programs `run` starts, with these options (checked on PATH before anything is touched)."""
    programs = ["ip", "nft"]
    if not args.no_sidecar:
        programs += ["unshare", "nsenter"]
    if args.configure_frr:
        programs += shlex.split(args.vtysh)[:1]
    return programs


def preflight(args: argparse.Namespace, *, euid: int | None = None,
              which: Callable[[str], str | None] = shutil.which) -> None:
    """HostError naming what is missing: root (nft and the sidecar namespace need CAP_NET_ADMIN) and the
    programs `run` needs. Without it, a non-root run failed with "sidecar: unshare exited with 1" and a
    missing `ip` with a traceback."""
    missing = [p for p in required_programs(args) if which(p) is None]
    if missing:
        raise HostError(f"run needs {', '.join(missing)} on PATH, not found "
                        "(Debian: apt-get install iproute2 nftables util-linux frr)")
    if (os.geteuid() if euid is None else euid) != 0:
        raise HostError("run needs root (nftables and the receiver's namespace need "
                        "CAP_NET_ADMIN): run it as root, e.g. sudo ip netns exec r1 savd-enforcer run ...")


def cmd_run(args: argparse.Namespace) -> int:
    preflight(args)
    pair = VethPair(args.frr_ifname, args.exa_ifname, args.frr_address, args.exa_address)
    sidecar = None if args.no_sidecar else Sidecar(pair, args.netns)
    try:
        groups = _groups(args)
        if sidecar:
            sidecar.start()
        if args.configure_frr:
            configure_frr(shlex.split(args.vtysh), args.asn, pair.exa_ip)
    except (groupmap.GroupMapError, NodeError):  # exit 2 for a bad mapping, 5 for FRR or ip failing
        if sidecar:
            sidecar.stop()
        raise
    options = EnforcerOptions(
        node=args.node, asn=args.asn, frr_address=pair.frr_ip, exa_address=pair.exa_ip,
        workdir=(args.workdir or Path("/run/savd-enforcer") / args.node).resolve(), groups=groups,
        group_file=args.groups_file, plan=_plan_options(args, (pair.frr_ifname, pair.exa_ifname)),
        reconcile_s=args.reconcile_s, netns=args.netns, counters_file=args.counters_file,
        exabgp_prefix=tuple(sidecar.prefix()) if sidecar else (), record=args.record,
        reconfigure=(lambda: configure_frr(shlex.split(args.vtysh), args.asn, pair.exa_ip))
        if args.configure_frr else None, reconfigure_after_s=args.reconfigure_after_s,
        frr_has_neighbor=(lambda: frr_has_neighbor(shlex.split(args.vtysh), pair.exa_ip))
        if args.configure_frr else None, frr_watch_s=args.frr_watch_s, frr_ifname=pair.frr_ifname,
        **_diagnosis(args, pair, sidecar))
    try:  # a SpeakerError reaches main: exit 5
        return asyncio.run(_run(options, None if args.no_http else args.http))
    finally:
        if args.configure_frr:
            _remove_neighbor(shlex.split(args.vtysh), args.asn, pair.exa_ip)
        if sidecar:
            sidecar.stop()


def _diagnosis(args: argparse.Namespace, pair: VethPair, sidecar: Sidecar | None) -> dict[str, Any]:
    """With --configure-frr and the sidecar: ask zebra about the FRR end when the session stays down and
    re-signal it (without the sidecar the pair, and so its interface, is not ours)."""
    if not args.configure_frr or sidecar is None:
        return {}
    vtysh = shlex.split(args.vtysh)
    return {"diagnose": lambda: frr_interface_state(vtysh, pair.frr_ifname, pair.frr_address),
            "resignal": sidecar.resignal}


def _remove_neighbor(vtysh: list[str], asn: int, receiver: str) -> None:
    """FRR must not keep a neighbour nobody answers (stuck Active, and a stale entry in its config)."""
    try:
        unconfigure_frr(vtysh, asn, receiver)
        log.info("event=enforcer-frr-neighbour-removed neighbor=%s", receiver)
    except NodeError as exc:
        log.error("event=enforcer-frr-unconfigure-failed neighbor=%s error=%r", receiver, str(exc)[:500])


async def _run(options: EnforcerOptions, http: tuple[str, int] | None) -> int:
    service = EnforcerService(options)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main.cancel)
    server = None
    try:
        if http:
            server = await serve(http[0], http[1], _handler(service))
            log.info("event=enforcer-http-listening host=%s port=%d", *http)
        await service.run()
    except asyncio.CancelledError:
        pass
    finally:
        if server:
            server.close()
        await service.close()
    return 0


def _handler(service: EnforcerService) -> Any:
    async def handle(path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path in ("/counters", "/rules"):
            try:   # ?max_age=S: a reading up to S seconds old will do (a frequent reader's choice)
                max_age = float(query.get("max_age", ["0"])[-1])
            except ValueError:
                return 400, {"error": f"max_age: not a number of seconds: {query['max_age'][-1]!r}"}
            doc = await service.read_snapshot(max_age)
            return 200, doc if path == "/counters" else {"node": doc["node"], "rules": doc["rules"]}
        if path == "/status":
            return 200, {"node": service.options.node, "generation": service.table.generation,
                         "routes": len(service.table), "applies": service.applies,
                         "last_apply_s": service.last_apply_s, "last_applied_at": service.last_applied_at,
                         "error": service.error, "applied_generation": service.applied_generation,
                         "installed": service.installed_count(),
                         "sessions": sorted(service.speaker.established()) if service.speaker else [],
                         "session": service.session.to_dict(),
                         "groups": {str(k): list(v) for k, v in service.groups().items()}}
        if path == "/healthz":
            return 200, {"ok": True}
        return 404, {"error": f"no such path {path}", "paths": ["/counters", "/rules", "/status", "/healthz"]}
    return handle


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    return run_handler("savd-enforcer", args.func, args)


if __name__ == "__main__":
    sys.exit(main())
