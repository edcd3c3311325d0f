"""`savd …`: one entry point; each concept registers its own subcommands.

Every module listed in COMMANDS exposes `register(subparsers)`, adding a subcommand whose handler is
stored as `func` (taking the parsed args, returning an exit code). Keeping the
subcommands next to the code they drive keeps this file a table of contents. Exit codes follow the one
table in appliance/errors.py: a handler returns 0/1 itself and raises a SavdError for the rest.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from appliance import config_cli, daemon, demo, flowspec_cli
from appliance.api import cli as api_cli
from appliance.cli_common import configure_logging, run_handler
from appliance.cli_examples import apply_examples
from appliance.engine import cli as engine_cli
from appliance.errors import ExitCode
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
    apply_examples(parser)  # appliance/cli_examples.py, for subcommands that bring none of their own
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return ExitCode.INPUT
    return run_handler("savd", args.func, args)


if __name__ == "__main__":
    sys.exit(main())
