"""Runs slow plain-Python work (verifiers, the code sandbox) on Qt's thread pool and reports back on the GUI thread."""

from __future__ import annotations

import itertools
from typing import Any, Callable

from PySide6.QtCore import QObject, QThreadPool, Signal


class Background(QObject):
    """submit(fn) returns a ticket; finished(ticket, result) or failed(ticket, message) arrives on the GUI thread."""

    finished = Signal(int, object)
    failed = Signal(int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tickets = itertools.count(1)
        self.pool = QThreadPool(self)

    def submit(self, fn: Callable[[], Any]) -> int:
        """The function must not touch widgets or the database: it only computes."""
        ticket = next(self._tickets)

        def job() -> None:
            try:
                result = fn()
            except Exception as err:  # noqa: BLE001 - any failure is reported to the user, not lost in a thread
                self.failed.emit(ticket, f"{type(err).__name__}: {err}")
                return
            self.finished.emit(ticket, result)

        self.pool.start(job)
        return ticket

    def wait(self) -> None:
        """Blocks until queued work is done (closing the window, tests)."""
        self.pool.waitForDone()
