"""The learning inbox: what the next dream will learn from, with counts."""

from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QLabel, QListWidget, QVBoxLayout, QWidget

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


class InboxPanel(QWidget):
    """Counts as a form, then the most recent items in words."""

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

    def show_inbox(self, inbox: dict) -> None:
        for key, label in self.counts.items():
            label.setText(str(inbox["counts"][key]))
        self.items.clear()
        lines = [f"Taught: {t['text']}" for t in inbox["taught"]]
        lines += [f"Corrected: “{c['original'][:60]}” → “{c['corrected'][:60]}”" for c in inbox["corrections"]]
        lines += [f"To practise ({t['family']}): {t['prompt'][:80]}" for t in inbox["tasks"]]
        self.items.addItems(lines[-RECENT_SHOWN:])
