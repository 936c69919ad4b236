"""Data folder and settings: NIGHTSCHOOL_HOME, unwritable folders, persistence, tolerant loading."""

from __future__ import annotations

import json

import pytest

from desktop import paths
from desktop.boot import boot
from desktop.settings import Settings, SettingsError, load_settings, save_settings


def test_home_variable_moves_everything(home):
    assert paths.data_dir() == home
    assert paths.db_path() == home / paths.DB_NAME
    assert paths.settings_path() == home / paths.SETTINGS_NAME


def test_unwritable_folder_names_itself(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(paths.DataDirError, match="not writable") as caught:
        paths.ensure_data_dir(blocker / "sub")
    assert str(blocker / "sub") in str(caught.value)


def test_settings_round_trip_and_reload_rule(tmp_path):
    path = tmp_path / "settings.json"
    changed = Settings(model_path="/models/x.gguf", n_threads=3, temperature=0.2)
    save_settings(changed, path)
    assert load_settings(path) == changed
    assert Settings(temperature=0.1).needs_reload(Settings()) is False
    assert Settings(n_ctx=1024).needs_reload(Settings()) is True


def test_settings_ignore_unknown_and_mistyped_keys(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"n_ctx": "big", "future_option": 1, "temperature": 1, "top_p": True}))
    loaded = load_settings(path)
    assert loaded.n_ctx == Settings().n_ctx
    assert loaded.temperature == 1.0
    assert loaded.top_p == Settings().top_p


def test_corrupt_settings_fall_back_to_defaults_with_a_warning(home):
    home.mkdir()
    (home / paths.SETTINGS_NAME).write_text("{not json")
    with pytest.raises(SettingsError, match="settings.json"):
        load_settings(home / paths.SETTINGS_NAME)
    state = boot()
    assert state.settings == Settings()
    assert any("settings.json" in warning for warning in state.warnings)
    assert (home / paths.SETTINGS_NAME).read_text() == "{not json"
