"""Reading JSON-lines files of objects, with errors that name the line."""

from __future__ import annotations

import json
from typing import Iterator


class JsonlError(ValueError):
    """A line that is not a JSON object: which line, and why."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def objects(text: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise JsonlError(number, f"not valid JSON ({err})") from err
        if not isinstance(row, dict):
            raise JsonlError(number, "expected a JSON object")
        yield number, row
