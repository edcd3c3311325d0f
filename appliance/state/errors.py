"""The state boundary's error: a journal that cannot be opened, read or written."""

from __future__ import annotations


class StateError(Exception):
    """A problem with the state journal; `path` names the file, `seq` the journal row when known."""

    def __init__(self, message: str, path: str = "", seq: int = 0) -> None:
        self.path = path
        self.seq = seq
        where = f"{path}: " if path else ""
        row = f" (journal row {seq})" if seq else ""
        super().__init__(f"{where}{message}{row}")
