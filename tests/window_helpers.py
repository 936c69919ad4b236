"""Driving the real window in tests: settings for short answers, opening it, asking as a user would."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt

from desktop import paths
from desktop.ui.app import make_window

LOAD_TIMEOUT_MS = 30_000
ANSWER_TIMEOUT_MS = 60_000


def fast_settings(home, **changes) -> None:
    """Short answers keep the suite quick; greedy keeps them predictable."""
    home.mkdir(parents=True, exist_ok=True)
    values = {"max_tokens": 40, "temperature": 0.0, "n_ctx": 2048, **changes}
    (home / paths.SETTINGS_NAME).write_text(json.dumps(values))


def open_window(qtbot, wait_for_model: bool = True):
    window = make_window()
    qtbot.addWidget(window)
    window.show()
    if wait_for_model:
        qtbot.waitUntil(lambda: window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    return window


def ask(qtbot, window, text: str) -> None:
    window.input.setFocus()
    qtbot.keyClicks(window.input, text)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.pending is None, timeout=ANSWER_TIMEOUT_MS)


def shown(window) -> list[tuple[str, str]]:
    return [(v.message["role"], v.message["content"]) for v in window.chat.views]


