"""The conversation as a column of messages: markdown, sibling arrows, and per-message actions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from desktop.render import to_html

ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}
FOLLOW_SLACK_PX = 4
"""Within this distance of the bottom, the view keeps following a streaming answer."""
FINISH_NOTES = {"stopped": "stopped", "length": "cut at the token limit", "error": "failed"}


BADGE_COLOURS = {"passed": "#15803d", "failed": "#b91c1c", "error": "#a16207"}
AUTHOR_NOTES = {"user": "written by you", "app": "acknowledged", "import": "imported"}


@dataclass
class Decor:
    """What a card shows beside the text: its place among siblings and the signals attached to it."""

    index: int = 0
    count: int = 1
    mark: str | None = None
    reason: str = ""
    verifications: list[dict] = field(default_factory=list)
    checks: int = 0
    proposal: dict | None = None
    taught: bool = False


class CardIntents(QObject):
    """What a user can ask of a message card; one instance per chat view, shared by all its cards."""

    regenerate = Signal(int)
    edit_submitted = Signal(int, str)
    step = Signal(int, int)
    mark = Signal(int, object, str)
    correction = Signal(int, str)
    add_check = Signal(int)
    attach_proposal = Signal(int, object)


class MessageView(QFrame):
    """One message: its text, where it sits among its siblings, its signals, and the actions it offers."""

    def __init__(self, message: dict, intents: CardIntents, decor: Decor | None = None) -> None:
        super().__init__()
        self.intents = intents
        decor = decor or Decor()
        self.decor = decor
        self.message = message
        role = message["role"]
        self.setObjectName(f"message-{role}")
        self.setProperty("role", role)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        header = QHBoxLayout()
        title = QLabel(f"<b>{ROLE_TITLES.get(role, role)}</b>")
        header.addWidget(title)
        notes = [FINISH_NOTES.get(message.get("finish_reason") or ""), "taught" if decor.taught else ""]
        if role == "assistant":
            notes.append(AUTHOR_NOTES.get(message.get("author") or ""))
        for note in filter(None, notes):
            header.addWidget(QLabel(f"<i>({note})</i>"))
        header.addStretch(1)
        self.badges: list[QPushButton] = []
        for verdict in decor.verifications:
            self._add_badge(header, verdict)
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
        self.reason_box: QLineEdit | None = None
        self.proposal_bar: QFrame | None = None
        if message.get("id") is not None:
            self._add_actions(decor.index, decor.count)
            if self._judgeable():
                self._add_signal_actions()
            if decor.proposal is not None:
                self._add_proposal(decor.proposal)
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
            self.prev_button = self._button("‹", "Previous version", lambda: self.intents.step.emit(mid, -1))
            self.sibling_label = QLabel(f"{index + 1}/{count}")
            self.actions.addWidget(self.sibling_label)
            self.next_button = self._button("›", "Next version", lambda: self.intents.step.emit(mid, 1))
            self.prev_button.setEnabled(index > 0)
            self.next_button.setEnabled(index < count - 1)
        self._button("Copy", "Copy the text", self._copy)
        if self._judgeable():
            self.regenerate_button = self._button("Regenerate", "Answer again; this answer is kept", lambda: self.intents.regenerate.emit(mid))
        if self.message["role"] == "user":
            self.edit_button = self._button("Edit", "Edit and resend; the original is kept", self.start_edit)
        self.actions.addStretch(1)

    def _judgeable(self) -> bool:
        """Answers can be regenerated and judged; the app's own acknowledgements of taught items cannot."""
        return self.message["role"] == "assistant" and self.message.get("author") != "app"

    def _add_badge(self, header: QHBoxLayout, verdict: dict) -> None:
        """A verifier's result: colour for the verdict, the reason on hover, full details on click."""
        spec = verdict["spec"]
        status = verdict["value"]
        badge = QPushButton(f"{spec['kind']} check {status}")
        badge.setFlat(True)
        badge.setObjectName(f"badge-{status}")
        badge.setStyleSheet(f"color: {BADGE_COLOURS.get(status, '#334155')}; font-weight: bold;")
        badge.setToolTip(verdict["reason"])
        badge.clicked.connect(lambda: self._show_details(verdict))
        header.addWidget(badge)
        self.badges.append(badge)

    def _show_details(self, verdict: dict) -> None:
        details = json.dumps({"spec": verdict["spec"], "result": verdict["result"]}, indent=2, ensure_ascii=False)
        box = QMessageBox(QMessageBox.Icon.Information, "Check result", verdict["reason"], parent=self)
        box.setDetailedText(details)
        box.setModal(False)
        box.show()

    def _add_signal_actions(self) -> None:
        """Correct / incorrect (click again to undo), a reason, the right answer, a check."""
        mid = self.message["id"]
        self.correct_button = self._button("✓", "Mark correct (Ctrl+1); click again to undo", lambda: self._toggle("correct"))
        self.incorrect_button = self._button("✗", "Mark incorrect (Ctrl+2); click again to undo", lambda: self._toggle("incorrect"))
        for button, value in ((self.correct_button, "correct"), (self.incorrect_button, "incorrect")):
            button.setObjectName(f"mark-{value}")
            button.setCheckable(True)
            button.setChecked(self.decor.mark == value)
        self.fix_button = self._button("Correct…", "Write the right answer (Ctrl+Shift+E)", self.start_correction)
        self.check_button = self._button("Add check…", "Attach an automatic check to this question", lambda: self.intents.add_check.emit(mid))
        if self.decor.mark is not None:
            self._show_reason_box()

    def _toggle(self, value: str) -> None:
        self.intents.mark.emit(self.message["id"], None if self.decor.mark == value else value, "")

    def _show_reason_box(self) -> None:
        self.reason_box = QLineEdit(self.decor.reason)
        self.reason_box.setPlaceholderText("Why? (optional, Enter to save)")
        self.reason_box.returnPressed.connect(
            lambda: self.intents.mark.emit(self.message["id"], self.decor.mark, self.reason_box.text().strip())
        )
        self.layout().addWidget(self.reason_box)

    def start_correction(self) -> None:
        """Opens the editor on the answer; what is sent is stored as the correction, the original is kept."""
        self._open_editor("Save correction", self._submit_correction)

    def _submit_correction(self) -> None:
        text = self.editor.toPlainText().strip() if self.editor else ""
        if text and text != self.message["content"]:
            self.intents.correction.emit(self.message["id"], text)
        self._cancel_edit()

    def _add_proposal(self, spec: dict) -> None:
        """The app noticed the question carries a check; one click attaches it (asking for a missing expected value)."""
        self.proposal_bar = QFrame(objectName="proposal")
        row = QHBoxLayout(self.proposal_bar)
        row.addWidget(QLabel(f"Proposed check: <b>{spec['kind']}</b>"))
        self.proposal_value: QLineEdit | None = None
        if spec.get("answer", "") is None:
            self.proposal_value = QLineEdit(placeholderText="expected answer")
            row.addWidget(self.proposal_value)
        attach = QPushButton("Attach")
        attach.clicked.connect(lambda: self._attach(spec))
        row.addWidget(attach)
        row.addStretch(1)
        self.layout().addWidget(self.proposal_bar)

    def _attach(self, spec: dict) -> None:
        filled = dict(spec)
        if self.proposal_value is not None:
            value = self.proposal_value.text().strip()
            if not value:
                self.proposal_value.setFocus()
                return
            filled["answer"] = _number_or_text(value) if spec["kind"] == "numeric" else value
        self.intents.attach_proposal.emit(self.message["id"], filled)

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.message["content"])

    def start_edit(self) -> None:
        """Swaps the question for an editor; sending it starts a new branch."""
        self._open_editor("Send", self._submit_edit)

    def _open_editor(self, action: str, on_submit) -> None:
        """Swaps the text for an editor with an action button and Cancel."""
        if self.editor is not None:
            return
        self.editor = QPlainTextEdit(self.message["content"])
        self.layout().insertWidget(2, self.editor)
        self.body.hide()
        row = QHBoxLayout()
        send = QPushButton(action)
        cancel = QPushButton("Cancel")
        send.clicked.connect(on_submit)
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
            self.intents.edit_submitted.emit(self.message["id"], text)
        self._cancel_edit()

    def _cancel_edit(self) -> None:
        if self.editor is None:
            return
        self.editor.deleteLater()
        self._edit_row.deleteLater()
        self.editor = None
        self.body.show()


def _number_or_text(value: str) -> int | float | str:
    """An expected value typed by the user: a number when it reads as one."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


class ChatView(QScrollArea):
    """Renders the active branch; the window rebuilds it from the store after every change."""

    def __init__(self) -> None:
        super().__init__()
        self.intents = CardIntents(self)
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
        self._follow = True
        self.verticalScrollBar().rangeChanged.connect(self._keep_following)
        self.verticalScrollBar().valueChanged.connect(self._note_scroll)
        self._empty = QLabel("Ask anything. What you teach me, I will learn while you sleep.")
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setObjectName("empty-hint")
        self._column.insertWidget(0, self._empty)

    def show_messages(self, messages: list[dict], decor: dict[int, Decor]) -> None:
        """Replaces the column; decor maps message id to what its card shows beside the text."""
        self._clear()
        for message in messages:
            self._append(MessageView(dict(message), self.intents, decor.get(message["id"])))
        self._empty.setVisible(not messages)
        self._scroll_to_end()

    def begin_stream(self) -> MessageView:
        """Adds the placeholder an answer streams into."""
        self.streaming = MessageView({"id": None, "role": "assistant", "content": ""}, self.intents)
        self._append(self.streaming)
        self._empty.hide()
        self._scroll_to_end()
        return self.streaming

    def append_stream(self, text: str) -> None:
        """Adds a batch of streamed text; the view follows the end unless the user scrolled up."""
        if self.streaming is None:
            return
        self.streaming.set_text(self.streaming.message["content"] + text)

    def _append(self, view: MessageView) -> None:
        self._column.insertWidget(self._column.count() - 1, view)
        self.views.append(view)

    def _clear(self) -> None:
        for view in self.views:
            self._column.removeWidget(view)
            view.hide()
            view.deleteLater()
        self.views.clear()
        self.streaming = None

    def _scroll_to_end(self) -> None:
        """Follows the end as the layout grows, until the user scrolls away."""
        self._follow = True
        self.verticalScrollBar().setValue(self.verticalScrollBar().maximum())

    def _note_scroll(self, value: int) -> None:
        """Scrolling up stops following the end; scrolling back down resumes it."""
        self._follow = value >= self.verticalScrollBar().maximum() - FOLLOW_SLACK_PX

    def _keep_following(self, _low: int, high: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(high)
