"""Import boundaries: the core never imports Qt or torch; the app never imports torch."""

from __future__ import annotations

import subprocess
import sys

CORE = ["desktop.engine", "desktop.store", "desktop.session", "desktop.settings", "desktop.paths",
        "desktop.boot", "desktop.modelfile", "desktop.render", "desktop.cli"]


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_core_imports_neither_qt_nor_torch():
    modules = loaded_after("\n".join(f"import {name}" for name in CORE))
    assert "PySide6" not in modules
    assert "torch" not in modules


def test_app_imports_qt_but_not_torch():
    modules = loaded_after("import desktop.ui.app, desktop.ui.main_window")
    assert "PySide6" in modules
    assert "torch" not in modules and "peft" not in modules
