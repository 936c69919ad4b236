"""Follows a dream process: its JSON progress lines in, SIGTERM out when the person comes back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

STOP_GRACE_MS = 2000
"""A dream asked to stop has this long to checkpoint and exit before it is killed."""


class DreamRunner(QObject):
    """Starts `python -m desktop.dream`, emits each progress line, and reports the exit code with the last message."""

    progress = Signal(dict)
    finished = Signal(int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.process = QProcess(self)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._done)
        self._last_message = ""
        self._kill_timer = QTimer(self, singleShot=True, interval=STOP_GRACE_MS)
        self._kill_timer.timeout.connect(self.process.kill)

    @property
    def running(self) -> bool:
        return self.process.state() != QProcess.ProcessState.NotRunning

    def start(self, db: Path, model: Path, threads: int) -> None:
        self._last_message = ""
        self.process.start(sys.executable, ["-m", "desktop.dream", "--db", str(db), "--model", str(model),
                                            "--threads", str(threads)])

    def stop(self) -> None:
        """SIGTERM: the trainer checkpoints and the dream exits without touching the database."""
        if self.running:
            self.process.terminate()
            self._kill_timer.start()

    def shutdown(self) -> None:
        """Blocking stop for closing the app: SIGTERM, the grace period, then SIGKILL."""
        if not self.running:
            return
        self.process.terminate()
        if not self.process.waitForFinished(STOP_GRACE_MS):
            self.process.kill()
            self.process.waitForFinished()

    def _read(self) -> None:
        while self.process.canReadLine():
            line = bytes(self.process.readLine()).decode("utf-8", errors="replace").strip()
            try:
                progress = json.loads(line)
            except ValueError:
                continue
            self._last_message = progress.get("message") or self._last_message
            self.progress.emit(progress)

    def _done(self, code: int, _status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self._read()
        self.finished.emit(code, self._last_message)
