"""What a running lab instance consists of, persisted so another process can inspect or tear it down.

One JSON file per instance: <root>/<lab name>/<prefix>/state.json (root /run/savd-lab by default, so
a reboot, which also drops the namespaces, forgets it). It is written before anything is created and
updated after each step, so a runner that dies half way leaves a record precise enough to clean up.

An instance is *owned* while the process that started it (pid + start time, guarding against PID
reuse) lives; `savd lab up` detaches its instance (owner None) so it outlives the command. An owned
instance whose owner died is stale, as is a detached one whose namespaces are gone: `Lab.up` removes
stale instances of the same lab name before starting.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appliance.lab import netns
from appliance.lab.errors import LabError

DEFAULT_ROOT = Path("/run/savd-lab")


@dataclass(slots=True)
class NodeState:
    netns: str
    frr: bool = False
    daemons: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class LabState:
    name: str
    prefix: str
    topology: str
    directory: str
    owner_pid: int | None
    owner_start: int | None
    phase: str = "starting"  # starting | up | failed
    created_s: float = 0.0
    nodes: dict[str, NodeState] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.directory) / "state.json"

    def save(self) -> None:
        """Write atomically (rename), so a reader never sees half a file."""
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> LabState:
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
            nodes = {k: NodeState(**v) for k, v in raw.pop("nodes", {}).items()}
            return cls(**raw, nodes=nodes)
        except (OSError, ValueError, TypeError) as exc:
            raise LabError(f"{path}: unreadable lab state: {exc}") from exc

    def owner_alive(self) -> bool:
        if self.owner_pid is None:
            return False
        return (
            netns.pid_alive(self.owner_pid) and netns.process_start_ticks(self.owner_pid) == self.owner_start
        )

    def is_stale(self) -> bool:
        """Nobody will ever tear this instance down: its owner died, or it is detached but gone."""
        if self.owner_pid is not None:
            return not self.owner_alive()
        present = netns.list_netns()
        return self.phase != "up" or not any(n.netns in present for n in self.nodes.values())


def instance_dir(root: Path, name: str, prefix: str) -> Path:
    return root / name / prefix


def list_instances(root: Path, name: str | None = None) -> list[LabState]:
    """Every recorded instance (of lab `name`, or of all labs), oldest first; unreadable files skipped."""
    pattern = f"{name}/*/state.json" if name else "*/*/state.json"
    found: list[LabState] = []
    for path in sorted(root.glob(pattern)):
        try:
            found.append(LabState.load(path))
        except LabError:
            continue
    return sorted(found, key=lambda s: s.created_s)
