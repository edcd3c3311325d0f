"""FRR's own watchdog (watchfrr) for a lab node, so a daemon that dies comes back as on a router.

A router runs watchfrr: a zebra that crashes is restarted, its configuration is sent again with
`vtysh -b -d <daemon>` (FRR's watchfrr.sh / frrcommon.sh) and the other daemons reconnect to it.
Without it a lab node whose zebra died keeps running with a bgpd that knows no new interface, and
refuses every session whose local address zebra never told it about (NOTIFICATION 5/0): a lab test
then fails minutes later for a reason nobody can see. watchfrr.sh cannot be used as it is (it starts
daemons with the system's /etc/frr and without the node's namespace), so each node gets a small
start/restart/stop script with the node's own command lines and configuration files.

Pure: renders the script and watchfrr's command line; the runner writes and starts them.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from appliance.lab import frr

__all__ = ["SCRIPT_NAME", "command_script", "watchfrr_argv"]

SCRIPT_NAME = "watchfrr-cmd.sh"
# watchfrr's defaults wait 60-600 s between restarts, sized for production; a lab wants its node back
# within seconds, and still backs off when a daemon keeps dying.
MIN_RESTART_S = 1
MAX_RESTART_S = 30


def command_script(
    node: str,
    pathspace: str,
    argvs: Mapping[str, Sequence[str]],
    configs: Sequence[Path],
) -> str:
    """The `start|restart|stop DAEMON|all` script watchfrr calls for this node: stop kills a daemon by
    its pid file; start runs its command line in the node's namespace, waits for its vty socket, then
    sends every configuration file to it (`vtysh -d`), in the order the lab applied them. `all` (what
    watchfrr asks when zebra died) stops every daemon in reverse order and starts them in order."""
    run_dir = shlex.quote(str(frr.run_dir(pathspace)))
    vtysh = shlex.join(frr.vtysh_argv(pathspace))
    cases = "\n".join(
        f"        {daemon}) eval {shlex.quote(shlex.join(['ip', 'netns', 'exec', pathspace, *argv]))} ;;"
        for daemon, argv in argvs.items()
    )
    confs = " ".join(shlex.quote(str(c)) for c in configs)
    order = " ".join(argvs)
    reverse = " ".join(reversed(list(argvs)))
    return f"""#!/bin/sh
# savd lab: watchfrr's start/restart/stop command for node {node} (what FRR's watchfrr.sh does on a
# router, with this node's namespace, pathspace, command lines and configuration files)
set -u
action="$1"
target="$2"
run() {{
    case "$1" in
{cases}
        *) echo "{SCRIPT_NAME}: unknown daemon $1" >&2; return 1 ;;
    esac
}}
stop_one() {{
    pid=$(cat {run_dir}/"$1".pid 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null
    return 0
}}
start_one() {{
    rm -f {run_dir}/"$1".vty
    run "$1" || return 1
    for _ in $(seq 50); do [ -S {run_dir}/"$1".vty ] && break; sleep 0.1; done
    for conf in {confs}; do {vtysh} -d "$1" -f "$conf" >/dev/null 2>&1; done
    return 0
}}
stopping="$target"
starting="$target"
if [ "$target" = all ]; then stopping="{reverse}"; starting="{order}"; fi
case "$action" in
    stop) for d in $stopping; do stop_one "$d"; done; exit 0 ;;
    restart) for d in $stopping; do stop_one "$d"; done ;;
    start) ;;
    *) echo "{SCRIPT_NAME}: unknown action $action" >&2; exit 1 ;;
esac
for d in $starting; do start_one "$d" || exit 1; done
exit 0
"""


def watchfrr_argv(pathspace: str, script: Path, daemons: Sequence[str], log_file: Path) -> list[str]:
    """watchfrr supervising the node's daemons through `script` (run inside the node's namespace)."""
    cmd = f"/bin/sh {shlex.quote(str(script))}"
    return [
        str(frr.FRR_SBIN / "watchfrr"),
        "-d",
        "-N",
        pathspace,
        "--log",
        f"file:{log_file}",
        "--min-restart-interval",
        str(MIN_RESTART_S),
        "--max-restart-interval",
        str(MAX_RESTART_S),
        "-s",
        f"{cmd} start %s",
        "-r",
        f"{cmd} restart %s",
        "-k",
        f"{cmd} stop %s",
        *daemons,
    ]
