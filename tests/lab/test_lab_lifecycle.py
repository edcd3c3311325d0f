"""Lab life cycle on a tiny topology: down (and any failure during up) leaves no namespace, veth, FRR
process, run directory or state behind; broken input fails with an error naming the node."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.lab import Lab, LabError, TopologyError
from appliance.lab.frr import run_dir
from appliance.lab.netns import list_netns, pid_alive

pytestmark = pytest.mark.lab


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                found.append(int(proc.name))
    return found


def _host_links() -> list[str]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout
    return [link["ifname"] for link in json.loads(out)]


def assert_nothing_left(lab: Lab) -> None:
    assert not [n for n in list_netns() if n.startswith(lab.prefix + "-")]
    assert not [name for name in _host_links() if lab.prefix in name]
    assert _processes_mentioning(lab.prefix + "-") == []
    assert not any(run_dir(lab.netns(n.name)).exists() for n in lab.topology.nodes)
    assert not lab.directory.exists()


def test_up_then_down_leaves_nothing(require_root: None, tiny_topology: Callable[..., Path]) -> None:
    topo = tiny_topology(h1_exec=("sh -c 'sleep 600 >/dev/null 2>&1 &'",))
    lab = Lab.load(topo)
    try:
        lab.up()
        lab.wait_converged(timeout_s=60)
        ping = lab.exec("h1", ["ping", "-c", "2", "-i", "0.2", "-W", "2", "198.18.255.2"])
        assert "2 received" in ping.stdout, ping.stdout
        pids = [p for n in lab.topology.nodes for p in lab.pids(n.name)]
        assert set(lab.daemon_pids("r1").values()) <= set(lab.pids("r1"))
        daemons = lab.daemon_pids("r1")
        assert set(daemons) == {"zebra", "staticd", "bgpd", "ospfd", "watchfrr"}
        assert len(pids) >= 11  # 2 x 4 FRR daemons, 2 watchfrr + the background sleep of h1's exec line
        assert lab.vtysh_json("r1", "show bgp neighbors json")["198.18.10.2"]["bgpState"] == "Established"
        shell = lab.exec("r2", ["sh", "-c", "vtysh -c 'show running-config' | grep ^hostname"], check=True)
        assert shell.stdout.startswith("hostname r2\n")  # vtysh inside a shell line reaches r2's daemons
        space = lab.netns("r2")  # an explicit pathspace is left alone, in a shell line or as argv
        for argv in (
            ["sh", "-c", f"vtysh -N {space} -c 'show running-config' | grep ^hostname"],
            ["vtysh", "-N", space, "-c", "show running-config"],
        ):
            assert "hostname r2\n" in lab.exec("r1", argv, check=True).stdout
    finally:
        lab.down()
    assert not any(pid_alive(p) for p in pids)
    assert_nothing_left(lab)


def test_invalid_frr_conf_line_fails_naming_the_node(
    require_root: None, tiny_topology: Callable[..., Path]
) -> None:
    topo = tiny_topology(r2_conf_extra="router ospf\n no-such-command 42\n")
    lab = Lab.load(topo)
    with pytest.raises(LabError) as err:
        lab.up()
    assert err.value.node == "r2"
    assert "node r2" in str(err.value) and "no-such-command" in str(err.value)
    assert_nothing_left(lab)


def test_failure_after_daemons_started_cleans_up(
    require_root: None, tiny_topology: Callable[..., Path]
) -> None:
    topo = tiny_topology(h1_exec=("false",))
    lab = Lab.load(topo)
    with pytest.raises(LabError) as err:
        lab.up()
    assert err.value.node == "h1"
    assert "exec 'false' exited 1" in str(err.value)
    assert_nothing_left(lab)


def test_missing_bind_file_is_named(require_root: None, tiny_topology: Callable[..., Path]) -> None:
    topo = tiny_topology()
    (topo.parent / "r2" / "frr.conf").unlink()
    with pytest.raises(TopologyError) as err:
        Lab.load(topo)
    assert err.value.node == "r2"
    assert err.value.field == "topology.nodes.r2.binds[1]"
    assert "r2/frr.conf" in str(err.value)


def test_stale_instance_of_a_dead_owner_is_removed_by_the_next_up(
    require_root: None, tiny_topology: Callable[..., Path]
) -> None:
    topo = tiny_topology()
    stale = Lab.load(topo)
    fresh = Lab.load(topo)
    try:
        stale.up()
        stale_pids = list(stale.daemon_pids("r1").values())
        dead = subprocess.Popen(["true"])
        dead.wait()
        state_file = stale.directory / "state.json"
        state = json.loads(state_file.read_text())
        state["owner_pid"] = dead.pid
        state_file.write_text(json.dumps(state))
        fresh.up()
        assert not any(pid_alive(p) for p in stale_pids)
        assert_nothing_left(stale)
        assert fresh.status()["nodes"]["r1"]["present"]
    finally:
        stale.down()
        fresh.down()
    assert_nothing_left(fresh)


def test_second_up_of_a_running_prefix_is_refused(
    require_root: None, tiny_topology: Callable[..., Path]
) -> None:
    topo = tiny_topology()
    lab = Lab.load(topo)
    try:
        lab.up()
        with pytest.raises(LabError, match="already running"):
            Lab.load(topo, prefix=lab.prefix).up()
        assert all(d["alive"] for d in lab.status()["nodes"]["r2"]["daemons"].values())
    finally:
        lab.down()
    assert_nothing_left(lab)


def test_down_works_after_the_topology_file_moved(
    require_root: None, tiny_topology: Callable[..., Path]
) -> None:
    topo = tiny_topology()
    lab = Lab.load(topo)
    try:
        lab.up(detach=True)
        topo.rename(topo.with_suffix(".moved"))
        again = Lab.attach("savtest-tiny", prefix=lab.prefix)
        status = again.status()
        assert status["phase"] == "up" and status["owner_pid"] is None
        assert status["nodes"]["r2"]["present"] and status["nodes"]["r2"]["daemons"]["bgpd"]["alive"]
        again.down()
    finally:
        lab.down()
    assert_nothing_left(lab)


def test_lab_factory_returns_a_converged_lab(
    lab_factory: Callable[..., Lab], tiny_topology: Callable[..., Path]
) -> None:
    lab = lab_factory(tiny_topology())
    route = lab.vtysh_json("r2", "show ip route 198.18.1.0/24 json")["198.18.1.0/24"][0]
    assert route["protocol"] == "ospf" and route["installed"] is True
    assert lab.status()["phase"] == "up"


def test_another_process_cannot_take_down_an_owned_lab(
    require_root: None, tiny_topology: Callable[..., Path]
) -> None:
    """The pattern `try: lab.up() finally: lab.down()` with a fixed prefix already in use elsewhere."""
    topo = tiny_topology()
    lab = Lab.load(topo)
    code = (
        "import sys\nfrom appliance.lab import Lab, LabError\n"
        f"other = Lab.load({str(topo)!r}, prefix={lab.prefix!r})\n"
        "try:\n    other.up()\nexcept LabError as exc:\n    print('refused:', exc)\n"
        "finally:\n    other.down()\n"
    )
    try:
        lab.up()
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert "refused:" in out.stdout and "already running" in out.stdout
        assert "event=lab_down_skipped" in out.stderr
        status = lab.status()
        assert all(n["present"] for n in status["nodes"].values())
        assert all(d["alive"] for n in status["nodes"].values() for d in n["daemons"].values())
    finally:
        lab.down()
    assert_nothing_left(lab)


def test_a_daemon_that_dies_comes_back_with_its_configuration(
    require_root: None, tiny_topology: Callable[..., Path]
) -> None:
    """watchfrr supervises every node as on a router: a killed zebra comes back and learns a new interface
    (a bgpd whose zebra died refuses sessions on addresses zebra never reported); a killed bgpd comes
    back with its configuration and its session re-establishes."""
    lab = Lab.load(tiny_topology())
    try:
        lab.up()
        lab.wait_converged(timeout_s=60)
        before = lab.daemon_pids("r1")
        assert pid_alive(before["watchfrr"]) and before["watchfrr"] in lab.pids("r1")
        for daemon in ("zebra", "bgpd"):
            os.kill(before[daemon], signal.SIGKILL)  # a crash, not a stop
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = lab.daemon_pids("r1")
            if all(now[d] != before[d] and pid_alive(now[d]) for d in ("zebra", "bgpd")):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"not restarted: {before} -> {lab.daemon_pids('r1')}")
        ns = lab.netns("r1")
        veth = ["ip", "-n", ns, "link", "add", "wd0", "type", "veth", "peer", "name", "wd1"]
        subprocess.run(veth, check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", "198.18.99.1/30", "dev", "wd0"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "wd0", "up"], check=True)

        def learned() -> bool:
            with contextlib.suppress(LabError):
                doc = lab.vtysh_json("r1", "show interface wd0 json")
                return "198.18.99.1/30" in json.dumps(doc)
            return False

        def established() -> bool:
            with contextlib.suppress(LabError, KeyError):
                doc = lab.vtysh_json("r1", "show bgp neighbors json")
                return bool(doc["198.18.10.2"]["bgpState"] == "Established")
            return False

        for what, probe in (("zebra learns wd0", learned), ("bgp session back", established)):
            deadline = time.monotonic() + 60
            while not probe():
                assert time.monotonic() < deadline, f"timed out: {what}"
                time.sleep(0.5)
        assert lab.status()["nodes"]["r1"]["daemons"]["zebra"]["alive"]
    finally:
        lab.down()
    assert_nothing_left(lab)
