"""`pip install .` into a fresh virtual environment, then savd from a directory that is not the checkout:
`savd --help`, `savd config check` on the installed example, `savd scenarios run`, and the files a checkout
keeps outside the package (configs, labs, ExaBGP templates, GoBGP stubs) found inside the installed one.

Offline by construction: the new venv has no pip and no packages of its own; a .pth file points it at this
venv's site-packages for the dependencies (and pip and setuptools), and the build runs without isolation
(`--no-deps --no-build-isolation --no-index`). The checkout's editable install is not visible there: the
.pth files of a directory added by a .pth line are not processed, so `appliance` must come from the wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[3]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "appliance", "rpki", "configs", "containerlab",
           "packaging", "docs", "LICENSE")  # docs: man pages (data files), when present


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=240, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv with savd installed from a copy of the checkout."""
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if not path.exists():
            continue
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            shutil.copy(path, src / name)
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], root)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root)
    Path(purelib.stdout.strip(), "savd-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                str(src)], root)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-3000:]
    return venv / "bin"


def test_package_comes_from_the_venv_not_the_checkout(installed: Path) -> None:
    where = _run([str(installed / "python"), "-c", "import appliance; print(appliance.__file__)"], Path("/"))
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(installed.parent)), where.stdout


def test_savd_help_from_any_directory(installed: Path) -> None:
    for argv in (["savd", "--help"], ["savd-enforcer", "--help"]):
        proc = _run([str(installed / argv[0]), *argv[1:]], Path("/"))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"usage: {argv[0]}")
    assert "scenarios" in _run([str(installed / "savd"), "--help"], Path("/")).stdout


def test_config_check_on_the_installed_example(installed: Path) -> None:
    find = _run([str(installed / "python"), "-c",
                 "from appliance.shipped import shipped; print(shipped('configs/example.toml'))"], Path("/"))
    example = Path(find.stdout.strip())
    assert example.is_file() and str(example).startswith(str(installed.parent)), find.stdout + find.stderr
    proc = _run([str(installed / "savd"), "config", "check", str(example)], Path("/"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"OK {example}: AS65000")


def test_scenarios_run_uses_the_shipped_suite(installed: Path) -> None:
    proc = _run([str(installed / "savd"), "scenarios", "run", "--json"], Path("/"))
    assert proc.returncode == 0, proc.stderr
    shipped_ids = {p.stem for p in (REPO / "appliance" / "scenarios").glob("*.yaml")}
    assert len(shipped_ids) >= 18
    assert all(sid in proc.stdout for sid in shipped_ids)


def test_labs_templates_and_stubs_are_inside_the_package(installed: Path) -> None:
    code = """
from appliance.lab.topology import load_topology
from appliance.shipped import shipped
from appliance.speakers.exabgp import ExaNeighbor, render_config
for lab in ("sav-basic", "sav-inter"):
    topo = load_topology(shipped(f"containerlab/{lab}/{lab}.clab.yml"))  # every bound file must exist
    print(topo.name)
n = ExaNeighbor(address="198.18.0.2", local_address="198.18.0.1", local_as=65000, peer_as=65000,
                router_id="198.18.0.1", families=("ipv4 flow",), name="r1")
print("neighbor 198.18.0.2" in render_config([n], "relay"))
"""
    proc = _run([str(installed / "python"), "-c", code], Path("/"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["sav-basic", "sav-inter", "True"]
    if (REPO / "appliance" / "speakers" / "gobgp_pb" / "gobgp_pb2.py").exists():
        stubs = _run([str(installed / "python"), "-c",
                      "import appliance.speakers.gobgp_pb.gobgp_pb2 as m; print(m.__file__)"], Path("/"))
        assert stubs.returncode == 0, stubs.stderr
        assert stubs.stdout.startswith(str(installed.parent))


def test_the_dashboard_is_inside_the_package_and_served(installed: Path) -> None:
    code = """
from fastapi.testclient import TestClient
from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.config import ApiConfig
from appliance.dashboard import STATIC
from appliance.monitor import Monitor
from appliance.monitor.counters import CounterBoard
from appliance.monitor.metrics import Metrics
from appliance.state import StateStore
store, monitor, counters = StateStore(), Monitor(), CounterBoard()
ports = ApiPorts(store, RulesHolder(), RpkiStatusBoard(), PushedRules(store), monitor, counters,
                 Metrics(monitor, counters))
client = TestClient(create_app(ports, ApiConfig()))
print(STATIC)
for name in sorted(p.name for p in STATIC.iterdir()):
    print(name, client.get(f"/dashboard/{name}").status_code)
"""
    proc = _run([str(installed / "python"), "-c", code], Path("/"))
    assert proc.returncode == 0, proc.stderr
    static, *served = proc.stdout.split("\n")[:-1]
    assert static.startswith(str(installed.parent)), static
    shipped = sorted(p.name for p in (REPO / "appliance" / "dashboard" / "static").iterdir())
    assert served == [f"{name} 200" for name in shipped]
