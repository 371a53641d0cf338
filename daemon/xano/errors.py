"""XanoSyntaxError: a XanoScript syntax problem with the file, line and column it was found at."""

from __future__ import annotations

from daemon.core.errors import Issue


class XanoSyntaxError(ValueError):
    """A `.xs` document that cannot be read; `line` and `column` are 1-based."""

    def __init__(self, message: str, *, file: str, line: int, column: int) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        super().__init__(f"{file}:{line}:{column}: {message}")

    def as_issue(self) -> Issue:
        return Issue(self.file, "", self.message, self.line, self.column)
