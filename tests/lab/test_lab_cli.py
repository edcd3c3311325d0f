"""`savd lab ...` as a user runs it: separate processes sharing the state folder. (`savd demo`, the
appliance end to end, is tested by tests/lab/test_demo.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.lab.netns import list_netns

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]


def savd(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO,
        check=False,
    )


def test_lab_up_status_exec_down_across_processes(
    require_root: None, tiny_topology: Callable[..., Path]
) -> None:
    topo = str(tiny_topology())
    prefix = "svt" + format(abs(hash(topo)) % 0xFFF, "03x")
    try:
        up = savd("lab", "up", topo, "--prefix", prefix, "--timeout", "60")
        assert up.returncode == 0, up.stderr
        assert "converged after" in up.stdout
        assert f"{prefix}-r1" in list_netns()
        listed = savd("lab", "list")
        assert f"savtest-tiny     prefix {prefix}  phase up  detached" in listed.stdout

        status = savd("lab", "status", topo, "--prefix", prefix, "--json")
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        assert doc["phase"] == "up" and doc["owner_pid"] is None
        assert doc["nodes"]["r1"]["ospf"] == [
            {"neighbor": "198.18.255.2", "interface": "eth1", "state": "Full"}
        ]
        assert doc["nodes"]["r2"]["bgp"] == [
            {"neighbor": "198.18.10.1", "remote_as": "65001", "state": "Established"}
        ]
        text = savd("lab", "status", topo, "--prefix", prefix)
        assert "bgpd:up" in text.stdout and "198.18.255.2" in text.stdout

        ping = savd(
            "lab",
            "exec",
            "--topo",
            topo,
            "--prefix",
            prefix,
            "h1",
            "--",
            "ping",
            "-c1",
            "-W2",
            "198.18.255.2",
        )
        assert ping.returncode == 0 and "1 received" in ping.stdout, ping.stdout + ping.stderr
        vty = savd(
            "lab",
            "exec",
            "--topo",
            topo,
            "--prefix",
            prefix,
            "r2",
            "--",
            "vtysh",
            "-c",
            "show ip ospf neighbor json",
        )
        assert "198.18.255.1" in json.loads(vty.stdout)["neighbors"]
        matrix = savd("lab", "ping", topo, "--prefix", prefix)
        assert matrix.returncode == 0, matrix.stdout + matrix.stderr
        assert matrix.stdout.count("2/2") == 2 and "n/a" in matrix.stdout  # h1<->h2, IPv4 only
        assert "h1=198.18.1.10  h2=198.18.2.10" in matrix.stdout
        again = savd("lab", "up", topo, "--prefix", prefix)
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        down = savd("lab", "down", topo, "--prefix", prefix, "--keep-logs", str(Path(topo).parent / "kept"))
    assert down.returncode == 0, down.stderr
    assert not [n for n in list_netns() if n.startswith(prefix + "-")]
    kept = Path(topo).parent / "kept"
    assert "daemon logs kept" in down.stdout
    assert "zebra" in (kept / "r1" / "zebra.log").read_text()  # the logs outlive the state folder
    assert (kept / "r2" / "watchfrr.log").exists()
    gone = savd("lab", "status", topo, "--prefix", prefix)
    assert gone.returncode == 1 and "no running instance" in gone.stderr


def test_lab_errors_are_one_clear_line(require_root: None, tiny_topology: Callable[..., Path]) -> None:
    topo = tiny_topology(r2_conf_extra="interface eth1\n ip adress 198.18.9.9/24\n")
    out = savd("lab", "up", str(topo), "--no-wait")
    assert out.returncode == 1
    assert out.stderr.startswith("savd lab: error: node r2: invalid FRR configuration")
    assert "Traceback" not in out.stderr
    missing = savd("lab", "up", str(topo.parent / "nope.clab.yml"))
    assert missing.returncode == 1 and "cannot read topology file" in missing.stderr
    noexec = savd("lab", "exec", "--topo", str(topo), "r1")
    assert noexec.returncode == 2
