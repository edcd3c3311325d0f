"""`savd …`: one entry point; each concept registers its own subcommands.

Every module listed in COMMAND_MODULES exposes `register(subparsers)`, adding a subcommand whose
handler is stored as `func` (taking the parsed args, returning an exit code). Keeping the
subcommands next to the code they drive keeps this file a table of contents.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

COMMAND_MODULES: tuple[str, ...] = (
    # one line per concept; add yours here
    "rpki.cli",
    "appliance.config_cli",
    "appliance.daemon",
    "appliance.api.cli",
    "appliance.engine.cli",
    "appliance.flowspec_cli",
    "appliance.topology.cli", "appliance.reports.cli",
    "appliance.lab.cli",
    "appliance.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="savd",
        description="savd: Source Address Validation route-server appliance "
        "(BGP-LS + RPKI in, per-interface SAV rules out as BGP FlowSpec).",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
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
