"""`savd …`: one entry point; each concept registers its own subcommands.

Every module listed in COMMANDS exposes `register(subparsers)`, adding a subcommand whose handler is
stored as `func` (taking the parsed args, returning an exit code). Keeping the
subcommands next to the code they drive keeps this file a table of contents. Exit codes follow the one
table in appliance/errors.py: a handler returns 0/1 itself and raises a SavdError for the rest.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from appliance.cli_common import configure_logging, run_handler
from appliance.cli_examples import apply_examples
from appliance.errors import ExitCode
from appliance.speakers.holdover import claim_held_over

COMMANDS = (  # one line per concept; add yours here (imported when the parser is built)
    "rpki.cli",
    "appliance.config_cli",
    "appliance.daemon",
    "appliance.api.cli",
    "appliance.engine.cli",
    "appliance.flowspec_cli",
    "appliance.sources.bgpls.cli",
    "appliance.sources.paths.cli",
    "appliance.sources.reports.cli",
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
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    apply_examples(parser)  # appliance/cli_examples.py, for subcommands that bring none of their own
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    claim_early(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return ExitCode.INPUT
    return run_handler("savd", args.func, args)


def claim_early(argv: Sequence[str]) -> None:
    """`savd run`: claim the speakers a killed savd left in holdover before anything slow. Importing the
    commands (the API's framework above all) takes seconds on a loaded machine, long enough for a short
    holdover to end the speakers this savd is about to adopt (run_command claims again, and adoption checks
    their configuration). Only `appliance.data_dir` is read here; a config it cannot read is left to the
    full parse, which names the problem."""
    if "run" not in argv:
        return
    words = list(argv)
    path = next((w.split("=", 1)[1] for w in words if w.startswith("--config=")), None)
    if path is None and "--config" in words[:-1]:
        path = words[words.index("--config") + 1]
    if path is None:
        return
    try:
        source = Path(path)
        data = tomllib.loads(source.read_text())
        data_dir = Path(str(data.get("appliance", {}).get("data_dir", "data"))).expanduser()
    except (OSError, ValueError, AttributeError, RuntimeError):
        return
    claim_held_over((data_dir if data_dir.is_absolute() else source.parent / data_dir) / "speakers")


if __name__ == "__main__":
    sys.exit(main())
