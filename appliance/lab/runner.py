"""Run a containerlab topology without Docker: one network namespace per node, real FRR daemons.

Owns bringing a lab up and down and answering questions about it; `appliance.lab` re-exports the API:

    lab = Lab.load("containerlab/sav-basic/sav-basic.clab.yml")   # prefix=None: random "sv" + 4 hex
    with lab:                                   # up() now, down() on exit, even after an exception
        lab.wait_converged()                    # polls <lab dir>/converged.json (subset match) or raises
        lab.exec("h1", ["ping", "-c1", "198.18.3.10"])        # -> CompletedProcess[str], in the node
        lab.vtysh("r1", "show bgp summary json")             # -> stdout; vtysh_json() decodes it
        lab.netns("r1"), lab.vtysh_argv("r1"), lab.daemon_pids("r1"), lab.pids("r1"), lab.status()
        proc = lab.spawn("ctl", ["exabgp", ...], log=path)    # long-running; killed by down()
        lab.wait_json("r4", "show bgp neighbors json", {"198.18.30.2": {"bgpState": "Established"}}, 30)
    lab.up(detach=True)                         # outlives this process (what `savd lab up` does)
    Lab.attach("sav-basic").down()              # from another process, via the state file

Names: namespace = FRR pathspace = `<prefix>-<node>`; vtysh for a node is `vtysh --vty_socket
/var/run/frr/<prefix>-<node>` (or `vtysh -N <prefix>-<node>`), from any namespace. Daemons run with the
node name as hostname (own UTS namespace), as in a container; their logs and the exec lines' output
are in the instance folder /run/savd-lab/<lab>/<prefix>/<node>/ while the lab runs.

What `up` does, in order (any failure: everything created so far is removed, then LabError):
0. a topology with savd.* router labels that has not been through `savd lab init` (docs/lab-kit.md; its
   routers bind no flowspec.conf, like containerlab/sav-basic): init writes its output with this
   instance's prefix into <instance folder>/kit (`lab.kit_dir`: savd.toml, reports.yaml, rpki.json, the
   routers' frr.conf and flowspec.conf, converged.json), and that topology is what runs;
1. validate: bound files exist, each bound frr.conf passes `vtysh -C` (a bad line names node and line);
2. remove stale instances of the same lab name (owner dead), record state before creating anything;
3. per node a namespace `<prefix>-<node>` with lo up and the node's `sysctls` applied;
4. per link a veth pair created directly inside the two namespaces with the file's interface names;
5. per FRR node (binds /etc/frr/daemons or /etc/frr/frr.conf) the daemons its `daemons` file enables,
   in pathspace `<prefix>-<node>` (sockets and pid files in /var/run/frr/<prefix>-<node>/), then the
   bound frr.conf applied with `vtysh -f` once every daemon answers (what FRR's init does);
6. each node's `exec` lines, in the node, in file order (one exiting non-zero fails `up`). In an exec
   line `vtysh` is pointed at the node's daemons and container paths of binds (`/etc/frr/flowspec.conf`)
   are mapped to host paths, so the same line works under real containerlab. Commands left running
   (`sh -c '... &'`) are found by namespace and killed by `down`;
7. per FRR node FRR's watchfrr over those daemons (watchdog.py): a daemon that dies is restarted and
   sent its configuration again, as on a router; `down` kills watchfrr first.
`down --keep-logs DIR` copies the nodes' daemon logs out before the state folder goes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from appliance.lab import frr, netns, watchdog
from appliance.lab.errors import LabError, TopologyError
from appliance.lab.state import DEFAULT_ROOT, LabState, NodeState, instance_dir, list_instances
from appliance.lab.status import bgp_neighbors, json_subset, ospf6_neighbors, ospf_neighbors
from appliance.lab.topology import FRR_CONF_PATH, FRR_DAEMONS_PATH, Node, Topology, load_topology

log = logging.getLogger(__name__)
T = TypeVar("T")
CONVERGED_FILE = "converged.json"
KIT_DIR = "kit"  # init's output for a labelled topology, in the instance folder
EXEC_TIMEOUT_S = 60.0
DAEMON_READY_S = 15.0


def new_prefix() -> str:
    """A prefix no existing namespace starts with: "sv" + 4 random hex digits."""
    taken = netns.list_netns()
    while True:
        prefix = "sv" + secrets.token_hex(2)
        if not any(n.startswith(prefix + "-") for n in taken):
            return prefix


class Lab:
    """One instance of a topology; see the module docstring for the life cycle."""

    def __init__(
        self,
        topology: Topology,
        prefix: str | None = None,
        state_root: Path = DEFAULT_ROOT,
        kit: bool = True,
    ) -> None:
        from appliance.lab.kit.render import is_kit_source

        self.topology = topology
        self.prefix = prefix or new_prefix()
        self.state_root = state_root
        self._nodes = {n.name: n for n in topology.nodes}
        self._owned = False  # this object started (or attached to) the instance: down() may remove it
        # a labelled topology not yet through `savd lab init`: up() runs init first (`kit_dir`)
        self.kit_source = topology if kit and is_kit_source(topology) else None

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def load(
        cls, path: str | Path, prefix: str | None = None, state_root: Path = DEFAULT_ROOT, kit: bool = True
    ) -> Lab:
        """Read a .clab.yml file (TopologyError on bad input); nothing is started yet. A topology with
        savd.* router labels that has not been through `savd lab init` is brought up on init's output
        (see `up`) unless `kit` is False."""
        return cls(load_topology(path), prefix=prefix, state_root=state_root, kit=kit)

    @classmethod
    def attach(
        cls, name: str | None = None, prefix: str | None = None, state_root: Path = DEFAULT_ROOT
    ) -> Lab:
        """The running instance recorded in the state dir (by lab name and/or prefix)."""
        found = [s for s in list_instances(state_root, name) if prefix in (None, s.prefix)]
        if not found:
            what = " ".join(x for x in (name, prefix) if x) or "any lab"
            raise LabError(f"no running instance of {what} recorded under {state_root}")
        if len(found) > 1:
            listing = ", ".join(f"{s.name}/{s.prefix}" for s in found)
            raise LabError(f"several instances running ({listing}): choose one with --prefix")
        state = found[0]
        try:
            topo = load_topology(state.topology, check_files=False)
        except TopologyError as exc:
            # The file moved or broke since `up`: the recorded node names still allow status and down.
            log.warning("event=lab_topology_unreadable lab=%s error=%s", state.name, exc)
            nodes = tuple(Node(name=n, kind="linux") for n in state.nodes)
            topo = Topology(name=state.name, path=Path(state.topology), nodes=nodes)
        lab = cls(topo, prefix=state.prefix, state_root=state_root)
        lab._owned = True
        return lab

    def __repr__(self) -> str:
        return f"Lab({self.name!r}, prefix={self.prefix!r}, topology={str(self.topology.path)!r})"

    # ---- names --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.topology.name

    @property
    def directory(self) -> Path:
        """This instance's state folder (state.json, per-node logs)."""
        return instance_dir(self.state_root, self.name, self.prefix)

    @property
    def kit_dir(self) -> Path | None:
        """Where `up` wrote `savd lab init`'s output for a labelled topology (savd.toml, reports.yaml,
        rpki.json, the routers' FRR files, converged.json); None for any other lab."""
        return self.directory / KIT_DIR if self.kit_source is not None else None

    def node(self, name: str) -> Node:
        if name not in self._nodes:
            raise LabError(
                f"lab {self.name} has no node {name!r} (nodes: {', '.join(self._nodes)})", node=name
            )
        return self._nodes[name]

    def netns(self, node: str) -> str:
        """Network namespace of a node; also its FRR pathspace."""
        self.node(node)
        return f"{self.prefix}-{node}"

    def vtysh_argv(self, node: str) -> list[str]:
        """argv prefix reaching the node's FRR daemons (`+ ["-c", "show ..."]`), from any namespace."""
        return frr.vtysh_argv(self.netns(node))

    def node_dir(self, node: str) -> Path:
        return self.directory / node

    # ---- life cycle ---------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    def up(self, *, detach: bool = False) -> None:
        """Create everything; on any failure remove what was created and raise LabError. A labelled
        topology not yet through init (`kit_source`) is first turned into init's output in `kit_dir`
        (with this instance's prefix), and that is what runs."""
        if self.kit_source is None:
            self._validate()
        with self._lock():  # check and record atomically: two processes never build the same prefix
            self._clean_stale()
            if self.kit_source is not None:
                self._init_kit()
            state = self._new_state()
            state.save()
        self._owned = True
        log.info("event=lab_up_start lab=%s prefix=%s nodes=%d", self.name, self.prefix, len(state.nodes))
        self._build(state, detach)

    def _init_kit(self) -> None:
        """`savd lab init` on the labelled source into `kit_dir`, then run its output (under the lock,
        after stale instances of this prefix are gone, so the folder is this instance's)."""
        from appliance.lab.kit.labels import read_plan
        from appliance.lab.kit.render import KitOptions, write_kit

        assert self.kit_source is not None and self.kit_dir is not None
        out = self.kit_dir
        try:
            write_kit(read_plan(self.kit_source), out, KitOptions(prefix=self.prefix))
            self.topology = load_topology(out / self.kit_source.path.name)
            self._nodes = {n.name: n for n in self.topology.nodes}
            self._validate()
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.directory.parent.rmdir()
            self.topology = self.kit_source
            self._nodes = {n.name: n for n in self.topology.nodes}
            raise
        log.info("event=lab_kit_init lab=%s prefix=%s out=%s", self.name, self.prefix, out)

    def _new_state(self) -> LabState:
        return LabState(
            name=self.name,
            prefix=self.prefix,
            topology=str(self.topology.path),
            directory=str(self.directory),
            owner_pid=os.getpid(),
            owner_start=netns.process_start_ticks(os.getpid()),
            created_s=time.time(),
            nodes={n.name: NodeState(netns=self.netns(n.name), frr=n.is_frr) for n in self.topology.nodes},
        )

    def _build(self, state: LabState, detach: bool) -> None:
        try:
            self._create(state)
        except BaseException as exc:
            state.phase = "failed"
            state.save()
            try:
                _teardown(state)
            except LabError as cleanup_exc:
                log.error("event=lab_cleanup_failed lab=%s error=%s", self.name, cleanup_exc)
            if isinstance(exc, LabError) or not isinstance(exc, Exception):
                raise
            raise LabError(f"lab {self.name}: {exc}") from exc
        state.phase = "up"
        if detach:
            state.owner_pid = state.owner_start = None
        state.save()
        log.info("event=lab_up lab=%s prefix=%s", self.name, self.prefix)

    def down(self, keep_logs: Path | None = None) -> None:
        """Kill every process of the lab, delete its namespaces, veths and state; idempotent. With
        `keep_logs`, the nodes' daemon logs (<node>/<daemon>.log) are copied there first."""
        with self._lock():
            if keep_logs is not None:
                try:
                    self.copy_logs(keep_logs)
                except OSError as exc:  # the teardown matters more than the logs
                    log.warning("event=lab_logs_not_kept lab=%s dest=%s error=%r", self.name, keep_logs,
                                str(exc))
            self._down_locked()
        self._owned = False

    def copy_logs(self, dest: Path) -> list[Path]:
        """Copy every node's daemon logs to dest/<node>/ (what a failed run needs to be understood after
        the state folder is gone); the copies made."""
        copied: list[Path] = []
        for log_file in sorted(self.directory.glob("*/*.log")):
            target = dest / log_file.parent.name / log_file.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log_file, target)
            copied.append(target)
        return copied

    def _down_locked(self) -> None:
        path = self.directory / "state.json"
        if path.exists():
            state = LabState.load(path)
            if not self._owned and state.owner_pid not in (None, os.getpid()) and not state.is_stale():
                # e.g. a `finally: lab.down()` after up() was refused because this prefix is in use
                log.warning(
                    "event=lab_down_skipped lab=%s prefix=%s owner_pid=%s reason=owned-by-another-process",
                    self.name,
                    self.prefix,
                    state.owner_pid,
                )
                return
            _teardown(state)
        else:
            _teardown(
                LabState(
                    name=self.name,
                    prefix=self.prefix,
                    topology=str(self.topology.path),
                    directory=str(self.directory),
                    owner_pid=None,
                    owner_start=None,
                    nodes={n: NodeState(netns=self.netns(n)) for n in self._nodes},
                )
            )
        log.info("event=lab_down lab=%s prefix=%s", self.name, self.prefix)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise up/down of one lab name across processes (flock on <root>/<lab>.lock)."""
        self.state_root.mkdir(parents=True, exist_ok=True)
        with open(self.state_root / f"{self.name}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _validate(self) -> None:
        if os.geteuid() != 0:
            raise LabError(f"lab {self.name}: network namespaces need root (run as root or with sudo)")
        if any(n.is_frr for n in self.topology.nodes) and (
            shutil.which(frr.VTYSH) is None or not (frr.FRR_SBIN / "zebra").exists()
        ):
            raise LabError(
                f"lab {self.name}: FRR is not installed (vtysh, {frr.FRR_SBIN}/zebra); run scripts/setup"
            )
        for node in self.topology.nodes:
            for bind in node.binds:
                if not bind.host.exists():
                    raise LabError(
                        f"node {node.name}: bound file {bind.host} (for {bind.container}) does not exist",
                        node=node.name,
                    )
            conf = node.bind_for(FRR_CONF_PATH)
            if conf is not None:
                frr.check_config(conf, node.name)
            for daemon in self._daemons(node).enabled:
                if daemon != "mgmtd" and not (frr.FRR_SBIN / daemon).exists():
                    raise LabError(
                        f"node {node.name}: {daemon} is enabled but {frr.FRR_SBIN / daemon} is not installed",
                        node=node.name,
                    )

    def _clean_stale(self) -> None:
        for other in list_instances(self.state_root, self.name):
            if other.prefix == self.prefix and not other.is_stale():
                raise LabError(f"lab {self.name} with prefix {self.prefix} is already running")
            if other.prefix == self.prefix or other.is_stale():
                log.warning("event=lab_stale_cleanup lab=%s prefix=%s", other.name, other.prefix)
                _teardown(other)
        clash = sorted(n for n in netns.list_netns() if n in {self.netns(x) for x in self._nodes})
        if clash:
            raise LabError(f"namespaces {', '.join(clash)} already exist and belong to no recorded lab")

    def _create(self, state: LabState) -> None:
        for node in self.topology.nodes:
            self.node_dir(node.name).mkdir(parents=True, exist_ok=True)
            netns.add_netns(self.netns(node.name), node.name)
            netns.set_sysctls(self.netns(node.name), node.sysctls, node.name)
        for link in self.topology.links:
            netns.add_veth(
                self.netns(link.a.node),
                link.a.interface,
                self.netns(link.b.node),
                link.b.interface,
                link.mtu,
                f"{link.a}--{link.b}",
            )
        for node in self.topology.nodes:
            if node.is_frr:
                self._start_frr(node, state)
        for node in self.topology.nodes:
            if node.is_frr:
                self._apply_frr_conf(node, state)
        for node in self.topology.nodes:
            for line in node.exec:
                self._run_exec_line(node, line)
        for node in self.topology.nodes:
            self._check_daemons(node, state)
        for node in self.topology.nodes:
            if node.is_frr:
                self._start_watchdog(node, state)

    # ---- FRR ----------------------------------------------------------------------------------
    def _daemons(self, node: Node) -> frr.DaemonsFile:
        path = node.bind_for(FRR_DAEMONS_PATH)
        if path is None:
            return frr.DaemonsFile(enabled=frr.ALWAYS_ON if node.is_frr else ())
        try:
            text = path.read_text()
        except OSError as exc:
            raise LabError(f"node {node.name}: cannot read {path}: {exc.strerror}", node=node.name) from exc
        try:
            parsed = frr.parse_daemons(text, str(path))
        except LabError as exc:
            raise LabError(f"node {node.name}: {exc}", node=node.name) from exc
        if (frr.FRR_SBIN / "mgmtd").exists() and "mgmtd" not in parsed.enabled:
            # FRR >= 9: mgmtd holds staticd's configuration and always runs
            wanted = {*parsed.enabled, "mgmtd"}
            order = tuple(d for d in frr.DAEMON_ORDER if d in wanted)
            parsed = frr.DaemonsFile(enabled=order, options=parsed.options)
        return parsed

    def _start_frr(self, node: Node, state: LabState) -> None:
        space = self.netns(node.name)
        ndir = self.node_dir(node.name)
        shutil.rmtree(frr.run_dir(space), ignore_errors=True)
        empty = ndir / "empty.conf"
        empty.write_text("")
        for path in (ndir, empty):
            shutil.chown(path, "frr", "frr")
        shim = ndir / "bin" / frr.VTYSH
        shim.parent.mkdir(exist_ok=True)
        real = shutil.which(frr.VTYSH) or frr.VTYSH
        shim.write_text(
            "#!/bin/sh\n# savd lab: vtysh reaching this node's FRR unless told where to go\n"
            'for a in "$@"; do case "$a" in -N*|--pathspace*|--vty_socket*) exec '
            f'{real} "$@";; esac; done\nexec {shlex.join(netns.with_hostname(node.name, [real]))} '
            f'--vty_socket {frr.run_dir(space)} "$@"\n'
        )
        shim.chmod(0o755)
        for daemon, argv in self._daemon_commands(node).items():
            netns.run(["ip", "netns", "exec", space, *argv], node=node.name)
            pid = self._wait_daemon(node.name, daemon)
            state.nodes[node.name].daemons[daemon] = pid
            state.save()
            log.debug("event=frr_daemon_started node=%s daemon=%s pid=%d", node.name, daemon, pid)

    def _daemon_commands(self, node: Node) -> dict[str, list[str]]:
        """Each enabled daemon's command line (own hostname, pathspace, log, empty startup config), in
        start order: what `up` runs and what watchfrr restarts."""
        space, ndir, parsed = self.netns(node.name), self.node_dir(node.name), self._daemons(node)
        return {
            d: netns.with_hostname(
                node.name,
                frr.daemon_argv(d, space, parsed.options.get(d, ()), ndir / f"{d}.log", ndir / "empty.conf"),
            )
            for d in parsed.enabled
        }

    def _wait_daemon(self, node: str, daemon: str) -> int:
        rdir = frr.run_dir(self.netns(node))
        ready = rdir / ("zserv.api" if daemon == "zebra" else f"{daemon}.vty")
        pidfile = rdir / f"{daemon}.pid"

        def probe() -> int | None:
            if ready.exists() and pidfile.exists():
                text = pidfile.read_text().strip()
                if text.isdigit():
                    return int(text)
            return None

        return self.wait_until(
            probe,
            DAEMON_READY_S,
            f"node {node}: {daemon} ready ({ready})",
            hint=lambda: self._log_tail(node, daemon),
        )

    def _apply_frr_conf(self, node: Node, state: LabState) -> None:
        conf = node.bind_for(FRR_CONF_PATH)
        if conf is None:
            return
        proc = subprocess.run(
            netns.with_hostname(node.name, [*self.vtysh_argv(node.name), "-f", str(conf)]),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            raise LabError(
                f"node {node.name}: applying {conf} failed: {' '.join(proc.stdout.split())[:500]}",
                node=node.name,
            )

    def _start_watchdog(self, node: Node, state: LabState) -> None:
        """watchfrr over the node's daemons (see watchdog.py): a daemon that dies comes back with its
        configuration, as on a router. Recorded as the node's `watchfrr` daemon; killed first at down."""
        space, ndir = self.netns(node.name), self.node_dir(node.name)
        argvs = self._daemon_commands(node)
        script = ndir / watchdog.SCRIPT_NAME
        script.write_text(watchdog.command_script(node.name, space, argvs, self._config_files(node)))
        argv = watchdog.watchfrr_argv(space, script, list(argvs), ndir / "watchfrr.log")
        netns.run(["ip", "netns", "exec", space, *netns.with_hostname(node.name, argv)], node=node.name)
        state.nodes[node.name].daemons["watchfrr"] = self._wait_daemon(node.name, "watchfrr")
        state.save()

    def _config_files(self, node: Node) -> list[Path]:
        """What the lab sent to the node's daemons, in order: the bound frr.conf, then every file an exec
        line loads with `vtysh -f` (host paths)."""
        files = [conf] if (conf := node.bind_for(FRR_CONF_PATH)) is not None else []
        for line in node.exec:
            with contextlib.suppress(ValueError):
                argv = self.rewrite(node.name, shlex.split(line))
                if frr.VTYSH in " ".join(argv) and "-f" in argv[:-1]:
                    files.append(Path(argv[argv.index("-f") + 1]))
        return files

    def _check_daemons(self, node: Node, state: LabState) -> None:
        for daemon, pid in state.nodes[node.name].daemons.items():
            if not netns.pid_alive(pid):
                raise LabError(
                    f"node {node.name}: {daemon} (pid {pid}) died: {self._log_tail(node.name, daemon)}",
                    node=node.name,
                )

    def _log_tail(self, node: str, daemon: str, lines: int = 5) -> str:
        try:
            text = (self.node_dir(node) / f"{daemon}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    # ---- running things in nodes --------------------------------------------------------------
    def rewrite(self, node: str, argv: Sequence[str]) -> list[str]:
        """Make a command written for the container work here: vtysh -> this node's daemons,
        container paths of binds -> host paths."""
        spec = self.node(node)
        out: list[str] = []
        for arg in argv:
            if arg.startswith("/") and (host := spec.host_path(arg)) is not None:
                out.append(str(host))
            elif "=" in arg and (val := arg.split("=", 1)[1]).startswith("/") and spec.host_path(val):
                out.append(f"{arg.split('=', 1)[0]}={spec.host_path(val)}")
            else:
                out.append(arg)
        if (
            out
            and os.path.basename(out[0]) == frr.VTYSH
            and not any(a.startswith(("-N", "--pathspace", "--vty_socket")) for a in out[1:])
        ):
            out = netns.with_hostname(node, [*self.vtysh_argv(node), *out[1:]])
        return out

    def node_env(self, node: str) -> dict[str, str]:
        """Environment of commands in the node: the node's `env`, and for routers a PATH whose first
        `vtysh` reaches the node's daemons (so `sh -c 'vtysh ...'` works as in a container)."""
        env = {**os.environ, **dict(self.node(node).env)}
        shim = self.node_dir(node) / "bin"
        if shim.is_dir():
            env["PATH"] = f"{shim}:{env.get('PATH', os.defpath)}"
        return env

    def exec_argv(self, node: str, argv: Sequence[str]) -> list[str]:
        """The full command line running argv in the node (for callers that manage the process)."""
        return ["ip", "netns", "exec", self.netns(node), *self.rewrite(node, argv)]

    def exec(
        self,
        node: str,
        argv: Sequence[str],
        *,
        check: bool = False,
        timeout_s: float = EXEC_TIMEOUT_S,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the node and capture its output (see `rewrite`)."""
        cmd = ["ip", "netns", "exec", self.netns(node), *self.rewrite(node, argv)]
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                input=input,
                env=self.node_env(node),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LabError(
                f"node {node}: {shlex.join(argv)} timed out after {timeout_s} s", node=node
            ) from exc
        if check and proc.returncode != 0:
            raise LabError(
                f"node {node}: {shlex.join(argv)} exited {proc.returncode}: "
                f"{' '.join(proc.stderr.split())[:300]}",
                node=node,
            )
        return proc

    def spawn(self, node: str, argv: Sequence[str], *, log: Path | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running command in the node (output to `log`); `down` kills it with the node."""
        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.netns(node), *self.rewrite(node, argv)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.node_env(node),
                start_new_session=True,
            )
        finally:
            if log:
                out.close()  # type: ignore[union-attr]

    def _run_exec_line(self, node: Node, line: str) -> None:
        """One containerlab exec line; output to <node dir>/exec.log so background children cannot block."""
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise LabError(f"node {node.name}: exec line {line!r}: {exc}", node=node.name) from exc
        logfile = self.node_dir(node.name) / "exec.log"
        with open(logfile, "ab") as out:
            out.write(f"$ {line}\n".encode())
            out.flush()
            try:
                proc = subprocess.run(
                    ["ip", "netns", "exec", self.netns(node.name), *self.rewrite(node.name, argv)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.node_env(node.name),
                    timeout=EXEC_TIMEOUT_S,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise LabError(f"node {node.name}: exec {line!r}: {exc}", node=node.name) from exc
        if proc.returncode != 0:
            tail = " | ".join(logfile.read_text(errors="replace").strip().splitlines()[-4:])
            raise LabError(
                f"node {node.name}: exec {line!r} exited {proc.returncode}: {tail}", node=node.name
            )

    def vtysh(self, node: str, *commands: str, daemon: str | None = None, timeout_s: float = 30.0) -> str:
        """stdout of vtysh `-c` commands on the node; LabError when vtysh fails."""
        argv = [*self.vtysh_argv(node), *(["-d", daemon] if daemon else [])]
        argv = netns.with_hostname(
            node, argv
        )  # vtysh shows its own hostname too: the node's, as in a container
        for command in commands:
            argv += ["-c", command]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"node {node}: vtysh {commands!r} timed out", node=node) from exc
        if proc.returncode != 0:
            raise LabError(
                f"node {node}: vtysh {commands!r} failed: {' '.join(proc.stdout.split())[:300]}", node=node
            )
        return proc.stdout

    def vtysh_json(self, node: str, command: str, daemon: str | None = None) -> Any:
        """Decoded JSON of one `... json` show command."""
        out = self.vtysh(node, command, daemon=daemon)
        try:
            return json.loads(out) if out.strip() else {}
        except ValueError as exc:
            raise LabError(f"node {node}: {command!r} did not return JSON: {out[:200]!r}", node=node) from exc

    # ---- inspection ---------------------------------------------------------------------------
    def _state(self) -> LabState | None:
        path = self.directory / "state.json"
        return LabState.load(path) if path.exists() else None

    def pids(self, node: str) -> list[int]:
        """Every process living in the node's namespace (daemons, exec-line children, spawned ones)."""
        return netns.netns_pids(self.netns(node))

    def daemon_pids(self, node: str) -> dict[str, int]:
        """Each FRR daemon's pid (watchfrr's included), as its pid file says now."""
        state = self._state()
        recorded = state.nodes[node].daemons if state and node in state.nodes else {}
        return {d: self._current_pid(node, d, p) for d, p in recorded.items()}

    def status(self) -> dict[str, Any]:
        """Nodes, daemons (alive?), OSPF/OSPFv3/BGP neighbour states, as plain data."""
        state = self._state()
        present = netns.list_netns()
        nodes: dict[str, Any] = {}
        for node in self.topology.nodes:
            ns = self.netns(node.name)
            pids = state.nodes[node.name].daemons if state and node.name in state.nodes else {}
            pids = {d: self._current_pid(node.name, d, p) for d, p in pids.items()}
            daemons = {d: {"pid": p, "alive": netns.pid_alive(p)} for d, p in pids.items()}
            entry: dict[str, Any] = {
                "netns": ns,
                "present": ns in present,
                "role": "frr" if node.is_frr else "host",
                "daemons": daemons,
            }
            alive = {d for d, v in daemons.items() if v["alive"]}
            entry.update(self._protocol_status(node.name, alive))
            nodes[node.name] = entry
        return {
            "name": self.name,
            "prefix": self.prefix,
            "topology": str(self.topology.path),
            "phase": state.phase if state else "down",
            "owner_pid": state.owner_pid if state else None,
            "nodes": nodes,
        }

    def _current_pid(self, node: str, daemon: str, recorded: int) -> int:
        """The daemon's pid now: watchfrr may have restarted it since `up` recorded one."""
        try:
            text = (frr.run_dir(self.netns(node)) / f"{daemon}.pid").read_text().strip()
        except OSError:
            return recorded
        return int(text) if text.isdigit() else recorded

    def _protocol_status(self, node: str, alive: set[str]) -> dict[str, Any]:
        queries: list[tuple[str, str, str, Callable[[Any], list[dict[str, str]]]]] = [
            ("ospf", "ospfd", "show ip ospf neighbor json", ospf_neighbors),
            ("ospf6", "ospf6d", "show ipv6 ospf6 neighbor json", ospf6_neighbors),
            ("bgp", "bgpd", "show bgp neighbors json", bgp_neighbors),
        ]
        out: dict[str, Any] = {}
        for key, daemon, command, view in queries:
            if daemon in alive:
                try:
                    out[key] = view(self.vtysh_json(node, command, daemon=daemon))
                except LabError as exc:
                    out[key] = [{"neighbor": "?", "state": f"error: {exc}"}]
        return out

    # ---- waiting ------------------------------------------------------------------------------
    def wait_until(
        self,
        probe: Callable[[], T | None],
        timeout_s: float,
        what: str,
        hint: Callable[[], str] | None = None,
        interval_s: float = 0.1,
    ) -> T:
        """Poll `probe` until it returns a value other than None/False; LabError names `what` on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = probe()
            if value is not None and value is not False:
                return value
            if time.monotonic() >= deadline:
                extra = f" ({hint()})" if hint else ""
                raise LabError(
                    f"lab {self.name}: timed out after {timeout_s:.0f} s waiting for {what}{extra}"
                )
            time.sleep(interval_s)

    def wait_json(self, node: str, command: str, want: Any, timeout_s: float) -> Any:
        """Poll `command` on the node until its JSON contains `want` (json_subset); returns the JSON."""
        last: list[Any] = [None]

        def probe() -> bool:
            try:
                last[0] = self.vtysh_json(node, command)
            except LabError as exc:
                last[0] = str(exc)
            return json_subset(want, last[0])

        def hint() -> str:
            return f"last seen: {json.dumps(last[0])[:400]}"

        what = f"node {node}: {command!r} to contain {json.dumps(want)}"
        self.wait_until(probe, timeout_s, what, hint=hint, interval_s=0.5)
        return last[0]

    def wait_converged(
        self, timeout_s: float = 90.0, expect: dict[str, dict[str, Any]] | None = None
    ) -> float:
        """Poll until every node's vtysh JSON contains what `expect` (default: <lab dir>/converged.json,
        {node: {command: subset}}) says; returns seconds waited. Raises LabError with the last value seen."""
        if expect is None:
            path = self.topology.directory / CONVERGED_FILE
            if not path.exists():
                return 0.0
            expect = json.loads(path.read_text())
        start = time.monotonic()
        deadline = start + timeout_s
        for node, commands in expect.items():
            for command, want in commands.items():
                self.wait_json(node, command, want, max(deadline - time.monotonic(), 0.0))
        return time.monotonic() - start


def _teardown(state: LabState) -> None:
    """Kill by PID (recorded daemons + whatever lives in the namespaces), delete namespaces, FRR run
    dirs and the state folder. Raises LabError listing anything that survived."""
    names = [n.netns for n in state.nodes.values()]
    pids: set[int] = set()
    for node in state.nodes.values():
        for pid in node.daemons.values():
            if netns.pid_alive(pid) and node.netns in " ".join(netns.cmdline(pid)):
                pids.add(pid)
        pids.update(netns.netns_pids(node.netns))
    # watchfrr first: it would restart the daemons it sees die
    watchdogs = {p for p in pids if any(w.endswith("watchfrr") for w in netns.cmdline(p)[:1])}
    survivors = netns.kill_pids(watchdogs)
    survivors += netns.kill_pids((pids - watchdogs) | {p for n in names for p in netns.netns_pids(n)})
    problems: list[str] = [f"pid {p} survived SIGKILL" for p in survivors]
    for name in names:
        try:
            netns.delete_netns(name)
        except LabError as exc:
            problems.append(str(exc))
        shutil.rmtree(frr.run_dir(name), ignore_errors=True)
    shutil.rmtree(state.directory, ignore_errors=True)
    try:
        Path(state.directory).parent.rmdir()
    except OSError:
        pass
    left = sorted(set(names) & netns.list_netns())
    if left:
        problems.append(f"namespaces still present: {', '.join(left)}")
    if problems:
        raise LabError(f"lab {state.name}/{state.prefix}: teardown incomplete: {'; '.join(problems)}")
