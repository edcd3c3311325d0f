"""FRR inside a lab node: which daemons to start, with which arguments, and how to reach them.

Owns the translation of a node's bound `/etc/frr/daemons` file into daemon command lines that run in
the node's network namespace with their own FRR pathspace (`-N <netns>`: vty sockets, zserv socket and
pid files under /var/run/frr/<netns>/), and the vtysh invocations that reach them.
The integrated frr.conf is applied with `vtysh -f` once the daemons are up, as FRR's own init does with
`vtysh -b`; a dry run (`vtysh -C -f`) first rejects a broken file before anything starts.

Parsing is pure; `check_config` runs vtysh's parser (no daemons needed).
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from appliance.lab.errors import LabError

FRR_SBIN = Path("/usr/lib/frr")
FRR_RUN = Path("/var/run/frr")
VTYSH = "vtysh"
# Start order of FRR's frrcommon.sh (zebra, then mgmtd on FRR >= 9); zebra and staticd always run.
DAEMON_ORDER = (
    "zebra", "mgmtd", "bgpd", "ripd", "ripngd", "ospfd", "ospf6d", "isisd", "babeld", "pimd", "pim6d",
    "ldpd", "nhrpd", "eigrpd", "sharpd", "pbrd", "staticd", "bfdd", "fabricd", "vrrpd", "pathd",
)
ALWAYS_ON = ("zebra", "staticd")
# Options the runner sets itself; a daemons file's own values for them are dropped.
_OWN_FLAGS_WITH_ARG = frozenset(
    {
        "-N",
        "--pathspace",
        "-f",
        "--config_file",
        "-i",
        "--pid_file",
        "--log",
        "--vty_socket",
        "-z",
        "--socket",
        "-u",
        "--user",
        "-g",
        "--group",
    }
)
_OWN_FLAGS = frozenset({"-d", "--daemon"})


@dataclass(frozen=True, slots=True)
class DaemonsFile:
    """The parts of FRR's `daemons` file the runner uses."""

    enabled: tuple[str, ...]
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)


def parse_daemons(text: str, source: str = "daemons") -> DaemonsFile:
    """Parse `bgpd=yes` and `bgpd_options="-A 127.0.0.1"` lines (shell syntax, comments allowed)."""
    enabled: set[str] = set(ALWAYS_ON)
    options: dict[str, tuple[str, ...]] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        try:
            words = shlex.split(value, comments=True)
        except ValueError as exc:
            raise LabError(f"{source}:{lineno}: cannot parse {line!r}: {exc}") from exc
        joined = " ".join(words)
        if key.endswith("_options"):
            options[key.removesuffix("_options")] = tuple(shlex.split(joined))
        elif key in DAEMON_ORDER:
            if joined == "yes":
                enabled.add(key)
            elif joined == "no":
                if key not in ALWAYS_ON:
                    enabled.discard(key)
            else:
                raise LabError(f"{source}:{lineno}: {key} must be yes or no, not {joined!r}")
    order = [d for d in DAEMON_ORDER if d in enabled]
    return DaemonsFile(enabled=tuple(order), options=options)


def own_options(words: tuple[str, ...]) -> list[str]:
    """A daemons file's options minus those the runner must control (pathspace, config, pid, log)."""
    out: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        flag = word.split("=", 1)[0]
        if flag in _OWN_FLAGS:
            continue
        if flag in _OWN_FLAGS_WITH_ARG:
            skip = "=" not in word
            continue
        out.append(word)
    return out


def daemon_argv(
    daemon: str, pathspace: str, options: tuple[str, ...], log_file: Path, config: Path
) -> list[str]:
    """Command line of one daemon: daemonised, in its own pathspace, logging to the node's folder."""
    return [
        str(FRR_SBIN / daemon),
        "-d",
        "-N",
        pathspace,
        "-f",
        str(config),
        "--log",
        f"file:{log_file}",
        *own_options(options),
    ]


def run_dir(pathspace: str) -> Path:
    """Where libfrr puts a pathspace's vty sockets, zserv socket and pid files."""
    return FRR_RUN / pathspace


def vtysh_argv(pathspace: str) -> list[str]:
    """vtysh talking to the daemons of one pathspace (works from any namespace)."""
    return [VTYSH, "--vty_socket", str(run_dir(pathspace))]


def check_config(conf: Path, node: str) -> None:
    """Dry-run vtysh's parser over `conf`; a bad line raises LabError naming the node, file and line."""
    try:
        proc = subprocess.run(
            [VTYSH, "-C", "-f", str(conf)], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"node {node}: cannot check {conf}: {exc}", node=node) from exc
    if proc.returncode != 0:
        detail = " ".join((proc.stdout + proc.stderr).split()) or f"exit code {proc.returncode}"
        raise LabError(f"node {node}: invalid FRR configuration {conf}: {detail}", node=node)
