"""The learning inbox: what the next dream will learn from, with counts."""

from __future__ import annotations

from typing import NamedTuple

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

ROWS = (
    ("taught", "Taught items"),
    ("corrections", "Corrections"),
    ("marked_correct", "Marked correct"),
    ("marked_incorrect", "Marked incorrect"),
    ("verified_passed", "Checks passed"),
    ("verified_failed", "Checks failed"),
    ("pending_tasks", "Verifiable prompts (train)"),
    ("sft_rows", "→ supervised examples"),
    ("preference_pairs", "→ preference pairs"),
    ("kto_rows", "→ single marks (KTO)"),
)
RECENT_SHOWN = 50
ITEM_ROLE = Qt.ItemDataRole.UserRole + 1


class Learnable(NamedTuple):
    """A listed item the person may keep out of dreams: where it lives ("taught" or "signal"), its id, its state."""

    where: str
    item_id: int
    excluded: bool


class InboxPanel(QWidget):
    """Counts as a form, then the most recent items in words; a selected item can be kept out of the next dreams."""

    exclude_requested = Signal(str, int, bool)
    """A Learnable's where and item_id, and whether to exclude it."""

    def __init__(self) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.counts: dict[str, QLabel] = {}
        for key, title in ROWS:
            self.counts[key] = QLabel("0")
            form.addRow(title, self.counts[key])
        layout.addLayout(form)
        self.items = QListWidget()
        self.items.setWordWrap(True)
        layout.addWidget(self.items, 1)
        self.exclude_button = QPushButton("Don't learn this")
        self.exclude_button.setToolTip("Keeps the selected item listed, but no dream trains on it")
        layout.addWidget(self.exclude_button)
        self.exclude_button.clicked.connect(self._toggle_excluded)
        self.items.currentItemChanged.connect(self._update_button)
        self._update_button()

    def show_inbox(self, inbox: dict) -> None:
        entries = [(f"Taught: {t['text']}", Learnable("taught", t["id"], False)) for t in inbox["taught"]]
        entries += [(f"Corrected: “{c['original'][:60]}” → “{c['corrected'][:60]}”",
                     Learnable("signal", c["id"], bool(c["excluded"]))) for c in inbox["corrections"]]
        entries += [(f"Marked {m['value']}: “{m['answer'][:80]}”", Learnable("signal", m["id"], bool(m["excluded"])))
                    for m in inbox["marks"]]
        entries += [(f"To practise ({t['family']}): {t['prompt'][:80]}", None) for t in inbox["tasks"]]
        for key, label in self.counts.items():
            label.setText(str(inbox["counts"][key]))
        selected = self._selected()
        self.items.clear()
        for text, item in entries[-RECENT_SHOWN:]:
            excluded = item is not None and item.excluded
            entry = QListWidgetItem(text + ("   (not learned from)" if excluded else ""))
            entry.setData(ITEM_ROLE, item)
            if excluded:
                entry.setForeground(Qt.GlobalColor.gray)
            self.items.addItem(entry)
            if item and selected and (item.where, item.item_id) == (selected.where, selected.item_id):
                self.items.setCurrentItem(entry)
        self._update_button()

    def _selected(self) -> Learnable | None:
        entry = self.items.currentItem()
        return entry.data(ITEM_ROLE) if entry else None

    def _update_button(self) -> None:
        item = self._selected()
        self.exclude_button.setEnabled(item is not None)
        self.exclude_button.setText("Learn this again" if item and item.excluded else "Don't learn this")

    def _toggle_excluded(self) -> None:
        item = self._selected()
        if item is not None:
            self.exclude_requested.emit(item.where, item.item_id, not item.excluded)
