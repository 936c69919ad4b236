"""The conversation as a column of messages: markdown, sibling arrows, and per-message actions."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.render import to_html

ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}
FINISH_NOTES = {"stopped": "stopped", "length": "cut at the token limit", "error": "failed"}


class MessageView(QFrame):
    """One message: its text, where it sits among its siblings, and the actions it offers."""

    regenerate = Signal(int)
    edit_submitted = Signal(int, str)
    step = Signal(int, int)

    def __init__(self, message: dict, sibling_index: int = 0, sibling_count: int = 1) -> None:
        super().__init__()
        self.message = message
        role = message["role"]
        self.setObjectName(f"message-{role}")
        self.setProperty("role", role)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        header = QHBoxLayout()
        title = QLabel(f"<b>{ROLE_TITLES.get(role, role)}</b>")
        header.addWidget(title)
        note = FINISH_NOTES.get(message.get("finish_reason") or "")
        if note:
            header.addWidget(QLabel(f"<i>({note})</i>"))
        header.addStretch(1)
        layout.addLayout(header)
        self.body = QLabel()
        self.body.setTextFormat(Qt.TextFormat.RichText)
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.body.setOpenExternalLinks(True)
        self.body.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        layout.addWidget(self.body)
        self.editor: QPlainTextEdit | None = None
        self.actions = QHBoxLayout()
        layout.addLayout(self.actions)
        self.sibling_label: QLabel | None = None
        if message.get("id") is not None:
            self._add_actions(sibling_index, sibling_count)
        self.set_text(message["content"])

    def set_text(self, text: str) -> None:
        """Renders markdown; called again as an answer streams in."""
        self.message["content"] = text
        self.body.setText(to_html(text) if text else "<i>…</i>")

    def _button(self, text: str, tip: str, slot) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.setFlat(True)
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        button.clicked.connect(slot)
        self.actions.addWidget(button)
        return button

    def _add_actions(self, index: int, count: int) -> None:
        mid = self.message["id"]
        if count > 1:
            self.prev_button = self._button("‹", "Previous version", lambda: self.step.emit(mid, -1))
            self.sibling_label = QLabel(f"{index + 1}/{count}")
            self.actions.addWidget(self.sibling_label)
            self.next_button = self._button("›", "Next version", lambda: self.step.emit(mid, 1))
            self.prev_button.setEnabled(index > 0)
            self.next_button.setEnabled(index < count - 1)
        self._button("Copy", "Copy the text", self._copy)
        if self.message["role"] == "assistant":
            self.regenerate_button = self._button("Regenerate", "Answer again; this answer is kept", lambda: self.regenerate.emit(mid))
        if self.message["role"] == "user":
            self.edit_button = self._button("Edit", "Edit and resend; the original is kept", self.start_edit)
        self.actions.addStretch(1)

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.message["content"])

    def start_edit(self) -> None:
        """Swaps the text for an editor with Send / Cancel."""
        if self.editor is not None:
            return
        self.editor = QPlainTextEdit(self.message["content"])
        self.layout().insertWidget(2, self.editor)
        self.body.hide()
        row = QHBoxLayout()
        send = QPushButton("Send")
        cancel = QPushButton("Cancel")
        send.clicked.connect(self._submit_edit)
        cancel.clicked.connect(self._cancel_edit)
        row.addStretch(1)
        row.addWidget(cancel)
        row.addWidget(send)
        self._edit_row = QWidget()
        self._edit_row.setLayout(row)
        self.layout().insertWidget(3, self._edit_row)
        self.editor.setFocus()

    def _submit_edit(self) -> None:
        text = self.editor.toPlainText().strip() if self.editor else ""
        if text:
            self.edit_submitted.emit(self.message["id"], text)
        self._cancel_edit()

    def _cancel_edit(self) -> None:
        if self.editor is None:
            return
        self.editor.deleteLater()
        self._edit_row.deleteLater()
        self.editor = None
        self.body.show()


class ChatView(QScrollArea):
    """Renders the active branch; the window rebuilds it from the store after every change."""

    regenerate = Signal(int)
    edit_submitted = Signal(int, str)
    step = Signal(int, int)

    def __init__(self) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        container = QWidget()
        container.setObjectName("chat-column")
        self._column = QVBoxLayout(container)
        self._column.setContentsMargins(16, 16, 16, 16)
        self._column.setSpacing(10)
        self._column.addStretch(1)
        self.setWidget(container)
        self.views: list[MessageView] = []
        self.streaming: MessageView | None = None
        self._empty = QLabel("Ask anything. What you teach me, I will learn while you sleep.")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setObjectName("empty-hint")
        self._column.insertWidget(0, self._empty)

    def show_messages(self, messages: list[dict], siblings: dict[int, tuple[int, int]]) -> None:
        """Replaces the column; siblings maps message id to (index, count)."""
        self._clear()
        for message in messages:
            index, count = siblings.get(message["id"], (0, 1))
            view = MessageView(dict(message), index, count)
            view.regenerate.connect(self.regenerate)
            view.edit_submitted.connect(self.edit_submitted)
            view.step.connect(self.step)
            self._append(view)
        self._empty.setVisible(not messages)
        self._scroll_to_end()

    def begin_stream(self) -> MessageView:
        """Adds the placeholder an answer streams into."""
        self.streaming = MessageView({"id": None, "role": "assistant", "content": ""})
        self._append(self.streaming)
        self._empty.hide()
        self._scroll_to_end()
        return self.streaming

    def append_stream(self, text: str) -> None:
        """Adds a batch of streamed text, following the end only if the user has not scrolled up."""
        if self.streaming is None:
            return
        bar = self.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 4
        self.streaming.set_text(self.streaming.message["content"] + text)
        if at_end:
            self._scroll_to_end()

    def _append(self, view: MessageView) -> None:
        self._column.insertWidget(self._column.count() - 1, view)
        self.views.append(view)

    def _clear(self) -> None:
        for view in self.views:
            view.deleteLater()
        self.views.clear()
        self.streaming = None

    def _scroll_to_end(self) -> None:
        QTimer.singleShot(0, lambda: self.verticalScrollBar().setValue(self.verticalScrollBar().maximum()))
