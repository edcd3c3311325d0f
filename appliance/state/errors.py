"""The state boundary's error: a journal that cannot be opened, read or written.

`kind` says what an operator (and the API) should do about it, because the remedies differ:
- CORRUPT: the file is not a usable journal (not a database, a newer schema, a row or the saved rule
  set does not decode, a zero-length file): `savd run --reset-corrupt-journal` moves it aside;
- UNWRITABLE: the data directory or the file cannot be written (permissions, read-only mount): fix
  the permissions; resetting would not help and is refused;
- DISK_FULL: the file system is full (SQLITE_FULL, ENOSPC): free space; the API answers 507;
- IO: any other read or write failure (I/O error, locked database).
"""

from __future__ import annotations

import enum

from appliance.errors import ExitCode, SavdError


class StateErrorKind(enum.StrEnum):
    CORRUPT = "corrupt"
    UNWRITABLE = "unwritable"
    DISK_FULL = "disk-full"
    IO = "io"


class StateError(SavdError):
    """A problem with the state journal; `path` names the file, `seq` the journal row when known."""

    exit_code = ExitCode.STATE

    def __init__(self, message: str, path: str = "", seq: int = 0,
                 kind: StateErrorKind = StateErrorKind.CORRUPT) -> None:
        self.path = path
        self.seq = seq
        self.kind = kind
        self.reason = message
        where = f"{path}: " if path else ""
        row = f" (journal row {seq})" if seq else ""
        super().__init__(f"{where}{message}{row}")
