"""ReportError: a report file, store or command argument is invalid; names the file and field."""

from __future__ import annotations

from appliance.errors import InputError


class ReportError(InputError):
    """Every problem found, each as "file: field: message", so an operator fixes the input in one pass."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
