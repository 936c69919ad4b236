"""What the assistant has been taught: edit, exclude (never trained on) or delete any item."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QInputDialog, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

ID_ROLE = Qt.ItemDataRole.UserRole + 1


class TaughtPanel(QWidget):
    """Renders taught items and emits edit / exclude / delete intents."""

    edit_requested = Signal(int, str)
    exclude_requested = Signal(int, bool)
    delete_requested = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setWordWrap(True)
        layout.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.edit_button = QPushButton("Edit…")
        self.exclude_button = QPushButton("Exclude")
        self.delete_button = QPushButton("Delete")
        for button in (self.edit_button, self.exclude_button, self.delete_button):
            row.addWidget(button)
        layout.addLayout(row)
        self.edit_button.clicked.connect(self._edit)
        self.exclude_button.clicked.connect(self._toggle_excluded)
        self.delete_button.clicked.connect(lambda: self._selected() and self.delete_requested.emit(self._selected()["id"]))
        self.list.currentItemChanged.connect(self._update_buttons)
        self._items: dict[int, dict] = {}
        self._update_buttons()

    def show_items(self, items: list[dict]) -> None:
        """Excluded items stay visible, greyed and labelled, so the user can include them again."""
        current = self._selected()
        self.list.clear()
        self._items = {item["id"]: item for item in items}
        for item in items:
            entry = QListWidgetItem(item["text"] + ("   (excluded)" if item["excluded"] else ""))
            entry.setData(ID_ROLE, item["id"])
            entry.setToolTip(f"Taught {item['created_at'][:16].replace('T', ' ')}\nAnswer: {item['acknowledgement']}")
            if item["excluded"]:
                entry.setForeground(Qt.GlobalColor.gray)
            self.list.addItem(entry)
            if current and current["id"] == item["id"]:
                self.list.setCurrentItem(entry)
        self._update_buttons()

    def select(self, taught_id: int) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(ID_ROLE) == taught_id:
                self.list.setCurrentRow(row)

    def _selected(self) -> dict | None:
        entry = self.list.currentItem()
        return self._items.get(entry.data(ID_ROLE)) if entry else None

    def _update_buttons(self) -> None:
        item = self._selected()
        for button in (self.edit_button, self.exclude_button, self.delete_button):
            button.setEnabled(item is not None)
        self.exclude_button.setText("Include" if item and item["excluded"] else "Exclude")

    def _edit(self) -> None:
        item = self._selected()
        if item is None:
            return
        text, ok = QInputDialog.getMultiLineText(self, "Edit taught item", "What should I remember?", item["text"])
        if ok and text.strip() and text.strip() != item["text"]:
            self.edit_requested.emit(item["id"], text.strip())

    def _toggle_excluded(self) -> None:
        item = self._selected()
        if item is not None:
            self.exclude_requested.emit(item["id"], not item["excluded"])
