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
