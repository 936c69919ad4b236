"""Where Nightschool keeps its data: one folder, movable with NIGHTSCHOOL_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "nightschool"
HOME_ENV = "NIGHTSCHOOL_HOME"
DB_NAME = "nightschool.db"
SETTINGS_NAME = "settings.json"


class DataDirError(Exception):
    """Raised when the data folder cannot be used, with a message that says what to do."""


def data_dir() -> Path:
    """Tests and power users move all data with NIGHTSCHOOL_HOME; everyone else gets the platform's folder."""
    override = os.environ.get(HOME_ENV)
    return Path(override).expanduser() if override else platformdirs.user_data_path(APP_NAME)


def ensure_data_dir(folder: Path | None = None) -> Path:
    """Creates the folder and proves it is writable before anything is stored in it."""
    folder = folder or data_dir()
    probe = folder / ".write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise DataDirError(
            f"The data folder '{folder}' is not writable ({err.strerror or err}). "
            f"Fix its permissions or set {HOME_ENV} to a folder you can write; "
            "until then nothing you do is saved."
        ) from err
    return folder


def db_path(folder: Path | None = None) -> Path:
    """The one SQLite file that holds conversations and everything learned from them."""
    return (folder or data_dir()) / DB_NAME


def settings_path(folder: Path | None = None) -> Path:
    """Settings live beside the database so NIGHTSCHOOL_HOME moves them too."""
    return (folder or data_dir()) / SETTINGS_NAME
