"""What the dream benchmarks share: a fresh data folder on the chosen model, and dreams run as the app runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from desktop import paths
from desktop.settings import Settings


@dataclass(frozen=True)
class BenchHome:
    """A benchmark's own data folder, base model and thread count."""

    home: Path
    db: Path
    base: Path
    threads: int
    settings: Settings


def fresh_home(home: Path | None, model: Path | None, threads: int | None, prefix: str) -> BenchHome:
    """A new data folder (or the one named), so a benchmark never touches the person's own data."""
    home = home or Path(tempfile.mkdtemp(prefix=prefix))
    os.environ[paths.HOME_ENV] = str(home)
    folder = paths.ensure_data_dir(home)
    settings = Settings()
    from desktop.boot import model_path

    return BenchHome(home, paths.db_path(folder), model or model_path(settings), threads or os.cpu_count() or 1, settings)


def dream(bench: BenchHome) -> tuple[int, float]:
    """One dream through the same process an idle dream starts; its progress goes to stderr. (exit code, seconds)"""
    started = time.perf_counter()
    command = [sys.executable, "-m", "desktop.dream", "--db", str(bench.db), "--model", str(bench.base),
               "--threads", str(bench.threads)]
    code = subprocess.call(command, stdout=sys.stderr)
    return code, time.perf_counter() - started
