"""`savd …`: one entry point; each concept registers its own subcommands.

Every module listed in COMMANDS exposes `register(subparsers)`, adding a subcommand whose handler is
stored as `func` (taking the parsed args, returning an exit code). Keeping the
subcommands next to the code they drive keeps this file a table of contents.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from appliance import config_cli, daemon, demo, flowspec_cli
from appliance.api import cli as api_cli
from appliance.engine import cli as engine_cli
from appliance.lab import cli as lab_cli
from appliance.sources.bgpls import cli as topology_cli
from appliance.sources.paths import cli as paths_cli
from appliance.sources.reports import cli as report_cli
from rpki import cli as rpki_cli

COMMANDS = (  # one line per concept; add yours here
    rpki_cli,
    config_cli,
    daemon,
    api_cli,
    engine_cli,
    flowspec_cli,
    topology_cli,
    paths_cli,
    report_cli,
    lab_cli,
    demo,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="savd",
        description="savd: Source Address Validation route-server appliance "
        "(BGP-LS + RPKI in, per-interface SAV rules out as BGP FlowSpec).",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def configure_logging(verbose: int) -> None:
    """Warnings by default, -v info, -vv debug (savd and savd-enforcer alike)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
