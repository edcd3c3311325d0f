"""savd's error tree and its one exit-code table.

Every error savd raises on purpose derives from `SavdError`, through one of five categories that decide
the exit code of `savd` and `savd-enforcer` (appliance/cli.py `main` and appliance/enforcer/main.py
`main` print one line, `savd: <message>`, and exit with `exit_code`; -vv adds the traceback). Classes keep
their older built-in bases (ValueError, RuntimeError, OSError) so callers that catch those still do.
Context (file, field, peer, node, step) is in attributes as well as in the message.

    SavdError
    ├── InputError                 2  what the operator gave is invalid: arguments, files, API input
    │   ├── ConfigError               appliance/config_reader.py (ValueError)
    │   ├── ReportError               appliance/sources/reports/errors.py
    │   ├── UnsafeName                appliance/names.py (ValueError)
    │   ├── SnapshotError             appliance/engine/loader.py (ValueError)
    │   ├── ScenarioError             appliance/engine/scenarios.py (ValueError)
    │   ├── AsRelError                appliance/engine/relationships.py (ValueError)
    │   ├── GroupMapError             appliance/enforcer/groupmap.py (ValueError)
    │   └── RpkiFileError             rpki/files.py (ValueError)
    ├── PeerDataError              5  what a peer sent cannot be decoded (dropped and logged in the daemon)
    │   ├── RouteError                appliance/enforcer/route.py (ValueError)
    │   ├── DecodeError               appliance/sources/paths/bmp.py (ValueError)
    │   │   └── FramingError
    │   └── PduError                  rpki/rtr/pdu.py
    ├── StateError                 3  the journal or state folder is unusable (appliance/state/errors.py)
    ├── HostError                  4  the host lacks what savd needs: root, a program on PATH, a file
    │   └── StartError                a component could not start (appliance/context.py, RuntimeError)
    │       └── RtrlibUnavailable     rpki/rtrlib.py (RuntimeError)
    └── ExternalError              5  a program or daemon savd drives failed or cannot be reached
        ├── SpeakerError              appliance/speakers/exabgp.py
        ├── GoBgpError                appliance/speakers/gobgp.py (RuntimeError)
        ├── PushError                 appliance/speakers/pusher.py (RuntimeError)
        ├── NftError                  appliance/enforcer/nft.py (RuntimeError)
        ├── NodeError                 appliance/enforcer/node.py (RuntimeError)
        ├── PollError                 appliance/enforcer/poller.py (RuntimeError)
        ├── StationError              appliance/sources/paths/station.py (OSError)
        ├── LabError                  appliance/lab/errors.py
        │   └── TopologyError
        └── DemoError                 appliance/demo.py (RuntimeError)

Exit codes (`ExitCode`), the same for every savd command and savd-enforcer:

    0    OK           done
    1    PROBLEMS     the command ran and found problems: `config check` errors, an API error answer,
                      refused FlowSpec rules
    2    INPUT        bad arguments, configuration or input file (InputError; argparse's usage errors)
    3    STATE        the journal or state folder is unusable (StateError)
    4    HOST         cannot start on this host: not root, a program missing, a component failed to start
    5    EXTERNAL     a program, daemon or peer failed, could not be reached or sent undecodable data
    70   INTERNAL     a bug: an error savd did not expect (one line; the traceback with -vv)
    130  INTERRUPTED  Ctrl-C

Outside the tree on purpose: private control-flow exceptions (`_Rebuild`, `_Retry`) and
appliance/lab/bgpls_exporter.py's `ExportError` (a standalone script run inside the routers, standard
library only). Must not: import anything from savd (every module may import this one).
"""

from __future__ import annotations

import enum

__all__ = [
    "ExitCode", "ExternalError", "HostError", "InputError", "PeerDataError", "SavdError", "exit_code_of",
]


class ExitCode(enum.IntEnum):
    """The process exit codes of `savd` and `savd-enforcer` (table in the module docstring)."""

    OK = 0
    PROBLEMS = 1
    INPUT = 2
    STATE = 3
    HOST = 4
    EXTERNAL = 5
    INTERNAL = 70
    INTERRUPTED = 130


class SavdError(Exception):
    """Root of every error savd raises on purpose; `exit_code` is what a command exits with."""

    exit_code: ExitCode = ExitCode.INTERNAL


class InputError(SavdError):
    """What the operator supplied (arguments, configuration, reports, snapshots, API input) is invalid."""

    exit_code = ExitCode.INPUT


class PeerDataError(SavdError):
    """Data received from a peer (BGP speaker, BMP router, RTR cache) cannot be decoded."""

    exit_code = ExitCode.EXTERNAL


class HostError(SavdError):
    """The host lacks something savd needs: root, a program on PATH, a readable file, a free port."""

    exit_code = ExitCode.HOST


class ExternalError(SavdError):
    """A program or daemon savd drives (ExaBGP, gobgpd, FRR, nft, ip, StayRTR) failed or is unreachable."""

    exit_code = ExitCode.EXTERNAL


def exit_code_of(exc: BaseException) -> ExitCode:
    """The exit code for an exception that reached a command's entry point."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, SavdError):
        return exc.exit_code
    return ExitCode.INTERNAL
