"""The one error family the CLI turns into exit code 2: input the user must fix, named in the message."""

from __future__ import annotations


class BadInput(ValueError):
    """A model, data, config, adapter or run directory the trainer refuses; the message names the file."""
