"""Nightschool desktop app: a Qt-free core (this package) and thin widgets in desktop.ui."""

__version__ = "0.1.0"
