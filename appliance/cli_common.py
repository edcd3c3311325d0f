"""What every savd command line shares (`savd` and `savd-enforcer`): running a handler under the
exit-code table of appliance/errors.py, logging setup, and the `examples:` epilog of each --help.

Kept apart from appliance/cli.py so savd-enforcer, which runs on the routers, does not import every
subcommand of savd. Must not: import any subcommand module.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from appliance.errors import ExitCode, SavdError, exit_code_of

__all__ = ["RAW", "configure_logging", "examples", "run_handler"]

log = logging.getLogger("savd.cli")


class ExamplesFormatter(argparse.HelpFormatter):
    """argparse's default formatting (descriptions wrapped), except that an epilog's `examples:` part and
    what follows it keep their line breaks."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        head, sep, tail = text.partition("examples:\n")
        filled = super()._fill_text(head, width, indent) if head.strip() else ""
        if not sep:
            return filled
        return (filled + "\n\n" if filled else "") + indent + sep + tail


RAW = ExamplesFormatter


def examples(*lines: str) -> str:
    """An `examples:` epilog for a subcommand's --help (use with RawDescriptionHelpFormatter)."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def configure_logging(verbose: int) -> None:
    """Warnings by default, -v info, -vv debug (savd and savd-enforcer alike)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def run_handler(prog: str, func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a subcommand's handler under the exit-code table of appliance/errors.py: a SavdError is one
    line on stderr and its category's code, anything unexpected is one line and 70 (the traceback only
    with -vv), Ctrl-C is 130. Shared by `savd` and `savd-enforcer`."""
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # `savd ... | head`
        return ExitCode.OK
    except SavdError as exc:
        print(f"{prog}: {_one_line(exc)}", file=sys.stderr)
        log.debug("traceback", exc_info=True)
        return exit_code_of(exc)
    except Exception as exc:
        print(f"{prog}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(run with -vv for the traceback)", file=sys.stderr)
        log.debug("traceback", exc_info=True)
        return ExitCode.INTERNAL


def _one_line(exc: BaseException) -> str:
    """The message on one line (multi-problem errors join their lines with '; ')."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
