"""Starts the window: Qt application, icon, style, then the main window over the booted core."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from desktop.boot import boot
from desktop.store import StoreError
from desktop.ui.main_window import MainWindow

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def _report_in(window: MainWindow) -> None:
    """An error escaping a slot is shown in the window's banner (and logged), never only on a console."""
    previous = sys.excepthook

    def hook(kind, error, trace) -> None:
        previous(kind, error, trace)
        message = str(error) if isinstance(error, StoreError) else f"Unexpected error: {kind.__name__}: {error}"
        window.show_banner(message)

    sys.excepthook = hook


def make_window(model_override: str | None = None) -> MainWindow:
    """Builds the window over a freshly booted core (also what the tests and the benchmark use)."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Nightschool")
    app.setDesktopFileName("nightschool")
    app.setWindowIcon(QIcon(str(ASSETS / "icon.svg")))
    style = ASSETS / "style.qss"
    if style.exists():
        app.setStyleSheet(style.read_text(encoding="utf-8"))
    window = MainWindow(boot(), model_override)
    _report_in(window)
    return window


def run_app(model_override: str | None = None) -> int:
    """The `nightschool` command without a subcommand."""
    window = make_window(model_override)
    window.show()
    return QApplication.instance().exec()
