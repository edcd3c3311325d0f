"""Errors raised by the lab runner and the topology reader.

    LabError                 anything that stops a lab from coming up, going down or answering
    └── TopologyError        the .clab.yml file (or a file it binds) is unreadable or not what we support

Context lives in attributes (`node`, `field`, `path`) as well as in the message, so callers and tests can
assert on it without parsing text.
"""

from __future__ import annotations

from pathlib import Path

from appliance.errors import ExternalError


class LabError(ExternalError):
    """A lab operation failed; `node` names the node concerned when there is one."""

    def __init__(self, message: str, *, node: str | None = None) -> None:
        super().__init__(message)
        self.node = node


class TopologyError(LabError):
    """The topology file is invalid; `field` is the dotted path of the offending field."""

    def __init__(
        self, message: str, *, path: Path | None = None, field: str | None = None, node: str | None = None
    ) -> None:
        where = ": ".join(str(p) for p in (path, field) if p)
        super().__init__(f"{where}: {message}" if where else message, node=node)
        self.path = path
        self.field = field
