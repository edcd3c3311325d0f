"""`savd config check FILE`: validate a configuration and print OK or every problem with its line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appliance.config import Config, ConfigError, load_config
from appliance.sources.reports.component import report_file
from appliance.sources.reports.errors import ReportError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("config", help="work with savd configuration files")
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate FILE; print OK or every error with its key and line")
    check.add_argument("file", help="path of the TOML configuration")
    check.set_defaults(func=run_check)


def summary(config: Config) -> str:
    peers = len(config.peers())
    return (
        f"OK {config.source}: AS{config.appliance.asn}, {len(config.speakers)} speaker(s), {peers} peer(s), "
        f"{len(config.rpki.caches)} RTR cache(s), {len(config.rpki.files)} RPKI file(s), "
        f"{len(config.bmp)} BMP station(s), {len(config.engine.neighbors)} eBGP neighbour(s), "
        f"{len(config.enforcers)} enforcer(s), API {config.api.host}:{config.api.port}"
    )


def run_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # one line per problem, with file, line and key
        print(f"{len(exc.problems)} error(s) in {exc.source}", file=sys.stderr)
        return 1
    problems = check_reports(config)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} error(s) in the reports file of {config.source}", file=sys.stderr)
        return 1
    print(summary(config))
    return 0


def check_reports(config: Config) -> list[str]:
    """The [reports] file loaded as `savd run` will load it: its problems, one line each, file and field
    named (savd run serves on with an alarm and the journal's facts; better to learn it here)."""
    if not config.reports.file:
        return []
    try:
        report_file(Path(config.reports.file)).read()
    except ReportError as exc:
        return str(exc).splitlines()
    except OSError as exc:
        return [f"{config.reports.file}: {exc.strerror}"]
    except Exception as exc:  # the daemon's watcher would say this too, and live on
        return [f"{config.reports.file}: cannot load: {type(exc).__name__}: {exc}"]
    return []
