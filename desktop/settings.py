"""The app's settings: one dataclass with its defaults, persisted as JSON beside the database."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from desktop.atomic import write_text_atomic


RELOAD_FIELDS = ("model_path", "n_threads", "n_ctx", "n_gpu_layers", "chat_format")


@dataclass
class Settings:
    """Everything a user can change in the settings dialog; defaults suit the embedded model on a laptop."""

    model_path: str = ""
    """Empty means the embedded default model."""
    n_threads: int = 0
    """0 means auto: one thread per core, minus one left for the window and the rest of the system."""
    n_ctx: int = 4096
    n_gpu_layers: int = 0
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512
    memory_items: int = 5
    """Short-term memory: how many relevant taught items or corrections join each question (0 turns it off)."""
    dreams_enabled: bool = True
    dream_idle_minutes: int = 10
    """A dream may start after this long without input while nothing is generating."""
    dream_on_ac_only: bool = False
    """On a laptop, dream only when plugged in."""
    chat_format: str = ""
    """Empty means the chat template stored in the GGUF; otherwise a llama-cpp-python format name (e.g. "chatml")."""

    def needs_reload(self, other: "Settings") -> bool:
        """Only a change to how the model is loaded costs a reload; sampling changes apply to the next answer."""
        return any(getattr(self, name) != getattr(other, name) for name in RELOAD_FIELDS)

    def threads(self) -> int:
        """Auto leaves a core free: llama.cpp's threads spin in lockstep, so one busy neighbour stalls them all."""
        return self.n_threads if self.n_threads > 0 else max(1, (os.cpu_count() or 1) - 1)


class SettingsError(Exception):
    """Raised when the settings file cannot be read; the message names the file."""


def load_settings(path: Path) -> Settings:
    """Reads settings, ignoring unknown keys so older and newer files both load."""
    if not path.exists():
        return Settings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SettingsError(f"Settings file '{path}' could not be read ({err}); using defaults.") from err
    if not isinstance(raw, dict):
        raise SettingsError(f"Settings file '{path}' does not hold a JSON object; using defaults.")
    defaults = asdict(Settings())
    values = {name: value for name, value in raw.items() if name in defaults and _fits(value, defaults[name])}
    return Settings(**values)


def _fits(value: object, default: object) -> bool:
    """A value replaces a default only if it has the default's type (an int may stand for a float)."""
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return type(value) is type(default)


def save_settings(settings: Settings, path: Path) -> None:
    """Writes atomically so a crash mid-write never leaves half a settings file."""
    write_text_atomic(path, json.dumps(asdict(settings), indent=2) + "\n")
