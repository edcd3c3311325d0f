"""The per-node watchfrr command script: valid sh, the node's own command lines, configurations sent to
the restarted daemon only, `all` in FRR's order (reverse to stop), unknown daemons refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

from appliance.lab.watchdog import command_script, watchfrr_argv

ARGVS = {"zebra": ["/bin/echo", "zebra-started"], "bgpd": ["/bin/echo", "bgpd-started"]}


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "cmd.sh"
    path.write_text(command_script("r1", "p1-r1", ARGVS, [Path("/x/frr.conf"), Path("/x/flowspec.conf")]))
    return path


def test_script_is_valid_sh_with_the_nodes_command_lines(tmp_path: Path) -> None:
    path = _script(tmp_path)
    assert subprocess.run(["sh", "-n", str(path)], check=False).returncode == 0
    text = path.read_text()
    assert "ip netns exec p1-r1 /bin/echo zebra-started" in text
    assert text.index("/x/frr.conf") < text.index("/x/flowspec.conf")  # the order the lab applied them
    assert '-d "$1" -f "$conf"' in text  # each file goes to the restarted daemon only
    assert 'stopping="bgpd zebra"; starting="zebra bgpd"; fi' in text  # all: stop reversed, start in order


def test_unknown_daemon_or_action_is_refused(tmp_path: Path) -> None:
    path = _script(tmp_path)
    bad = subprocess.run(["sh", str(path), "start", "ripd"], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "unknown daemon ripd" in bad.stderr
    bad = subprocess.run(["sh", str(path), "reload", "zebra"], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "unknown action reload" in bad.stderr


def test_watchfrr_argv_supervises_through_the_script(tmp_path: Path) -> None:
    argv = watchfrr_argv("p1-r1", tmp_path / "cmd.sh", ["zebra", "bgpd"], tmp_path / "watchfrr.log")
    assert argv[-2:] == ["zebra", "bgpd"]
    assert argv[argv.index("-N") + 1] == "p1-r1"
    assert argv[argv.index("-r") + 1] == f"/bin/sh {tmp_path / 'cmd.sh'} restart %s"
