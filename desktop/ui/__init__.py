"""Thin PySide6 widgets over the Qt-free core in desktop/: they render state and emit intents."""
