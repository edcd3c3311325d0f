"""Every `savd` and `savd-enforcer` subcommand lists its actions (each with a help line) and shows examples,
and every example parses with the real parser (issue 14: `savd api --help` listed only `trace`)."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from collections.abc import Iterator

import pytest

from appliance.cli import build_parser
from appliance.cli_examples import EXAMPLES
from appliance.enforcer.main import build_parser as enforcer_parser


def _walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, f"{path} {name}")


PARSERS = dict(_walk(build_parser(), "savd")) | dict(_walk(enforcer_parser(), "savd-enforcer"))


def _examples(parser: argparse.ArgumentParser) -> list[str]:
    text = parser.format_help()
    _, _, tail = text.partition("\nexamples:\n")
    return [line.strip() for line in tail.splitlines() if line.startswith("  ") and line.strip()]


def test_the_walk_sees_every_subcommand() -> None:
    assert {"savd api reports add", "savd scenarios run", "savd lab up", "savd-enforcer run"} <= set(PARSERS)
    assert len(PARSERS) >= 50


@pytest.mark.parametrize("path", sorted(PARSERS))
def test_help_lists_every_action_with_a_help_line(path: str) -> None:
    parser = PARSERS[path]
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {a.dest: a.help for a in action._choices_actions}
            for name in action.choices:
                assert helped.get(name), f"`{path} {name}` has no help line in `{path} --help`"
                assert re.search(rf"^\s+{re.escape(name)}\s+\S", text, re.MULTILINE), f"{name} not listed"


@pytest.mark.parametrize("path", sorted(PARSERS))
def test_help_has_examples_that_parse(path: str) -> None:
    parser = PARSERS[path]
    lines = _examples(parser)
    assert lines, f"`{path} --help` shows no examples (add them to appliance/cli_examples.py)"
    for line in lines:
        if not line.startswith(("savd ", "savd-enforcer ", "ip netns exec")):
            continue  # a continuation such as the exit-code table
        argv = shlex.split(line.replace("$TOKEN", "t"))
        prog = "savd-enforcer" if "savd-enforcer" in argv else "savd"
        argv = argv[argv.index(prog) + 1:]
        root = enforcer_parser() if prog == "savd-enforcer" else build_parser()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                args = root.parse_args(argv)
            except SystemExit as exc:
                pytest.fail(f"`{line}` in `{path} --help` does not parse ({exc.code}): {err.getvalue()}")
        assert callable(getattr(args, "func", None)), line


def test_examples_table_names_only_real_commands() -> None:
    assert set(EXAMPLES) <= set(PARSERS)


def test_api_help_lists_every_resource_and_reports_its_actions() -> None:
    api = PARSERS["savd api"].format_help()
    for resource in ("health", "topology", "rpki", "alarms", "counters", "events", "reports", "rules",
                     "trace", "explain", "flowspec"):
        assert re.search(rf"^\s+{resource}\s+\S", api, re.MULTILINE), resource
    reports = PARSERS["savd api reports"].format_help()
    for action in ("list", "add", "delete"):
        assert re.search(rf"^\s+{action}\s+\S", reports, re.MULTILINE), action
