"""The message box: Enter sends, Shift+Enter starts a new line."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit


class InputBox(QPlainTextEdit):
    """Emits submitted(text) on Enter with non-blank text, then clears itself."""

    submitted = Signal(str)
    MAX_LINES_VISIBLE = 8

    def __init__(self) -> None:
        super().__init__()
        self.setPlaceholderText("Message Nightschool…  (Enter to send, Shift+Enter for a new line)")
        self.setTabChangesFocus(True)
        self.textChanged.connect(self._fit_height)
        self._fit_height()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submit()
            return
        super().keyPressEvent(event)

    def submit(self) -> None:
        """Sends what was typed; a blank box sends nothing."""
        text = self.toPlainText().strip()
        if text:
            self.clear()
            self.submitted.emit(text)

    def _fit_height(self) -> None:
        """Grows with the text up to a few lines, then scrolls."""
        lines = min(max(self.document().blockCount(), 2), self.MAX_LINES_VISIBLE)
        self.setFixedHeight(self.fontMetrics().lineSpacing() * lines + 16)
