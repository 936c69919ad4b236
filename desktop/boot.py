"""Start-up shared by the window and the command line: data folder, database and settings, degrading instead of failing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from desktop import paths
from desktop.engine import LoadOptions, SamplingParams
from desktop.modelfile import default_model_path
from desktop.settings import Settings, SettingsError, load_settings
from desktop.store import Store, StoreError


@dataclass
class Boot:
    """What the app starts with; warnings are shown to the user, never swallowed."""

    store: Store
    settings: Settings
    settings_file: Path | None
    warnings: list[str] = field(default_factory=list)


def boot() -> Boot:
    """Opens the data folder; an unusable folder or database falls back to memory so chatting still works."""
    warnings: list[str] = []
    try:
        folder = paths.ensure_data_dir()
    except paths.DataDirError as err:
        return Boot(Store(None), Settings(), None, [str(err)])
    settings_file = paths.settings_path(folder)
    try:
        settings = load_settings(settings_file)
    except SettingsError as err:
        settings = Settings()
        warnings.append(str(err))
    try:
        store = Store(paths.db_path(folder))
    except StoreError as err:
        store = Store(None)
        warnings.append(f"{err} Conversations in this session are kept in memory only.")
    return Boot(store, settings, settings_file, warnings)


def model_path(settings: Settings, override: str | None = None) -> Path:
    """The model to load: --model first, then the settings, then the embedded default."""
    chosen = override or settings.model_path
    return Path(chosen).expanduser() if chosen else default_model_path()


def load_options(settings: Settings, path: Path) -> LoadOptions:
    """Settings as the engine takes them."""
    return LoadOptions(
        model_path=path,
        n_ctx=settings.n_ctx,
        n_threads=settings.threads(),
        n_gpu_layers=settings.n_gpu_layers,
        chat_format=settings.chat_format,
    )


def sampling(settings: Settings) -> SamplingParams:
    """Sampling settings as the engine takes them."""
    return SamplingParams(temperature=settings.temperature, top_p=settings.top_p, max_tokens=settings.max_tokens)
