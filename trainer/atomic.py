"""Output files appear whole or not at all: written under a temp name in the same folder, fsynced, renamed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def _fsync_dir(folder: Path) -> None:
    """Makes a rename in folder survive a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yields a temp path beside path; after the block it is fsynced and renamed over path, or removed on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    try:
        yield temp
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
        _fsync_dir(path.parent)
    finally:
        temp.unlink(missing_ok=True)


def write_json(path: Path, data: object) -> None:
    """Writes data as indented JSON, atomically."""
    with atomic_path(path) as temp:
        temp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def remove_partials(folder: Path) -> list[Path]:
    """Deletes temp files a killed run left in folder; they were never outputs."""
    leftovers = sorted(folder.glob(f".*{PARTIAL_SUFFIX}")) if folder.is_dir() else []
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers
