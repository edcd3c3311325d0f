"""packaging/systemd/savd.service is a unit systemd accepts (systemd-analyze verify, with ExecStart pointed
at this checkout's savd), it runs `savd run`, and it lets speakers outlive a crashed savd (KillMode)."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
UNIT = REPO / "packaging" / "systemd" / "savd.service"


def test_the_systemd_unit_verifies_and_runs_savd_with_holdover(tmp_path: Path) -> None:
    text = UNIT.read_text()
    savd = Path(sys.executable).parent / "savd"
    assert savd.exists()
    local = tmp_path / "savd.service"
    local.write_text(text.replace("/opt/savd/.venv/bin/savd", str(savd)))
    proc = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(text)
    service = unit["Service"]
    assert service["ExecStart"].split()[1:] == ["run", "--config", "/etc/savd/savd.toml"]
    assert service["KillMode"] == "process" and service["Restart"] == "on-failure"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_the_unit_runs_unprivileged_and_sandboxed() -> None:
    """Issue 12 item 12: no root (9.6 UNSAFE before), one capability (BGP's port 179), sandboxing on."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service.get("DynamicUser") == "yes" and "User" not in service
    assert service["CapabilityBoundingSet"] == service["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert service["ProtectSystem"] == "strict" and service["StateDirectory"] == "savd"
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(UNIT)], capture_output=True,
                          text=True, check=False, timeout=60)
    level = [line for line in proc.stdout.splitlines() if "Overall exposure level" in line]
    assert level and float(level[0].split(":")[1].split()[0]) < 3.0, proc.stdout[-500:]
