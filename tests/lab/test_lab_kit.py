"""The lab kit end to end on a topology of its own (tests/lab/fixtures/kit6: five savd routers a1, a2,
c1, c2, b1 plus the external x1; hosts h1, h2, inet; appliance ctl), through the commands only:

    savd lab init kit6.clab.yml --out OUT --prefix P      (labels + the routers' own OSPF/BGP configs)
    savd lab up OUT/kit6.clab.yml --prefix P              (converged per the generated converged.json)
    savd rpki serve OUT/rpki.json --port RTR              (foreground; killed by PID)
    savd lab enforcers up --config OUT/savd.toml --lab kit6 --prefix P
    savd run --config OUT/savd.toml                       (killed by PID, its speakers reaped)
    savd lab traffic kit6/traffic.yaml --json             (counted at the receivers)

and asserts every spoofed class dropped and every legitimate one delivered. Whatever it started is
stopped in `finally`, by PID or by its own down command, even on failure; the namespace prefix is random.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.demo import Appliance, DemoError, DemoLab, wait_until
from appliance.lab.netns import list_netns
from appliance.lab.runner import Lab
from appliance.speakers.holdover import reap
from rpki.localcache import free_port

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(420)]

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "kit6"
ROUTERS = ("a1", "a2", "c1", "c2", "b1")
SAVD = [sys.executable, "-m", "appliance.cli"]


def savd(*args: str, timeout_s: float = 180.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SAVD, *args], capture_output=True, text=True, timeout=timeout_s, check=False)


def _stop(proc: subprocess.Popen[bytes] | None, timeout_s: float = 20.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def kit_files(topology: Path, out: Path, stem: str) -> Iterator[dict[str, Any]]:
    """`savd lab init` of `topology` into `out` for a random prefix (`stem` + 4 hex) and free ports; every
    process a test starts is registered in the yielded state and stopped afterwards, whatever happens."""
    prefix = stem + secrets.token_hex(2)
    api_port, rtr_port = free_port(), free_port()
    done = savd("lab", "init", str(topology), "--out", str(out), "--prefix", prefix,
                "--api-port", str(api_port), "--rtr-port", str(rtr_port))
    assert done.returncode == 0, done.stderr
    state: dict[str, Any] = {"prefix": prefix, "out": out, "api_port": api_port, "rtr_port": rtr_port,
                             "procs": {}, "lab_up": False, "enforcers": False}
    try:
        yield state
    finally:
        _stop(state["procs"].get("savd"))
        reap(out / "data" / "speakers")  # speakers a killed savd left in holdover
        if state["enforcers"]:
            savd("lab", "enforcers", "down", "--config", str(out / "savd.toml"))
        _stop(state["procs"].get("stayrtr"))
        if state["lab_up"]:
            savd("lab", "down", str(out / topology.name), "--prefix", prefix,
                 "--keep-logs", str(out / "frr-logs"))
        left = [n for n in list_netns() if n.startswith(prefix + "-")]
        assert not left, f"namespaces left behind: {left}"


@pytest.fixture
def kit(tmp_path: Path, require_root: None) -> Iterator[dict[str, Any]]:
    with kit_files(FIXTURE / "kit6.clab.yml", tmp_path / "out", "svk") as state:
        yield state


def test_kit_lab_drops_spoofed_and_delivers_legitimate_traffic(kit: dict[str, Any]) -> None:
    out, prefix = kit["out"], kit["prefix"]
    topo = out / "kit6.clab.yml"
    app = start_kit(kit, topo, "kit6", {f"198.18.253.{i}": r for i, r in enumerate(ROUTERS, start=1)}, 120)
    installed = wait_active(kit, app, 180)
    assert installed["a1"] > 0 and installed["a2"] > 0 and installed["b1"] > 0, installed

    traffic = savd("lab", "traffic", str(FIXTURE / "traffic.yaml"), "--topo", str(topo), "--prefix", prefix,
                   "--json", timeout_s=300)
    results = json.loads(traffic.stdout)
    spoofed = [r for r in results if r["spoofed"]]
    legit = [r for r in results if not r["spoofed"]]
    print(f"installed rules per router: {installed}")
    for r in results:
        print(f"  {'SPOOFED' if r['spoofed'] else 'legit  '} {r['label']:<42} {r['source']:<20} "
              f"{r['delivered']}/{r['sent']}")
    assert len(spoofed) == 5 and len(legit) == 5
    assert [r["delivered"] for r in spoofed] == [0] * 5, spoofed
    assert [r["delivered"] for r in legit] == [r["sent"] for r in legit], legit
    assert traffic.returncode == 0, traffic.stderr


def start_kit(kit: dict[str, Any], topo: Path, name: str, peers: dict[str, str], up_s: int) -> Appliance:
    """What a user runs after `savd lab init`, in order: `savd lab up`, `savd rpki serve`, `savd lab
    enforcers up` and `savd run` (logs under <out>/logs); an Appliance polls savd's API and the enforcers
    as the demo does. `kit` records what is up, so the fixture tears it down whatever happens."""
    out, prefix = kit["out"], kit["prefix"]
    kit["lab_up"] = True  # from here on `savd lab down` runs, whatever happens
    up = savd("lab", "up", str(topo), "--prefix", prefix, "--timeout", str(up_s), timeout_s=up_s + 80)
    assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
    log_dir = out / "logs"
    log_dir.mkdir()
    with (log_dir / "stayrtr.out").open("wb") as log:
        kit["procs"]["stayrtr"] = subprocess.Popen(
            [*SAVD, "rpki", "serve", str(out / "rpki.json"), "--port", str(kit["rtr_port"])],
            stdout=log, stderr=subprocess.STDOUT)
    wait_until("savd rpki serve printing its port",
               lambda: f"127.0.0.1:{kit['rtr_port']}" in (log_dir / "stayrtr.out").read_text(), 20)
    kit["enforcers"] = True
    enf = savd("lab", "enforcers", "up", "--config", str(out / "savd.toml"), "--lab", name,
               "--prefix", prefix)
    assert enf.returncode == 0, enf.stderr
    assert enf.stdout.count("pid ") == len(peers)
    token = secrets.token_hex(16)
    with (log_dir / "savd.log").open("wb") as log:
        kit["procs"]["savd"] = subprocess.Popen(
            [*SAVD, "run", "--config", str(out / "savd.toml")], stdout=log, stderr=subprocess.STDOUT,
            env=dict(os.environ, SAVD_API_TOKEN=token), start_new_session=True)
    routers = tuple(dict.fromkeys(peers.values()))
    profile = DemoLab(name=name, topology=topo, templates={}, prefix=prefix, workdir=out, routers=routers,
                      peers=peers, flows=lambda **_: (), vrps=(), bgpls=routers)
    app = Appliance(Lab.attach(name, prefix=prefix), out, template=out / "savd.toml", profile=profile)
    app.api_port, app.token = kit["api_port"], token
    return app


def active(kit: dict[str, Any], app: Appliance) -> dict[str, int] | None:
    """The rules active per router, once savd is running (its log's tail when it died)."""
    assert kit["procs"]["savd"].poll() is None, (kit["out"] / "logs" / "savd.log").read_text()[-3000:]
    return app.rules_active()


def wait_active(kit: dict[str, Any], app: Appliance, timeout_s: float) -> dict[str, int]:
    """`active` until it holds; on timeout the failure names what the last check saw (learned routers,
    versions, pushed and installed per router) and where the logs are kept."""
    try:
        installed: dict[str, int] = wait_until("rules active on every router", lambda: active(kit, app),
                                                timeout_s, 0.5)
    except DemoError as exc:
        raise AssertionError(f"{exc}; last check: {app.last_check}; logs: {kit['out']}/logs, "
                             f"{kit['out']}/data/enforcers, {kit['out']}/frr-logs") from exc
    return installed
