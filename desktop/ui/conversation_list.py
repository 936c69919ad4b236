"""The sidebar: conversations newest first, search by text, new, rename in place, delete."""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLineEdit, QListView, QMenu, QMessageBox, QPushButton, QVBoxLayout, QWidget

SEARCH_DELAY_MS = 150
"""Typing in the search box waits this long before querying, so each keystroke does not hit the database."""
ID_ROLE = Qt.ItemDataRole.UserRole + 1

Index = QModelIndex | QPersistentModelIndex


class ConversationModel(QAbstractListModel):
    """Rows are conversation dicts from the store; editing a title emits rename_requested."""

    rename_requested = Signal(int, str)

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []

    def set_rows(self, rows: list[dict]) -> None:
        """Replaces all rows (the list is short; a reset is simplest and fast)."""
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802 (Qt naming)
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return row["title"]
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{row['title']}\nlast active {row['updated_at'][:16].replace('T', ' ')}"
        if role == ID_ROLE:
            return row["id"]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        return super().flags(index) | Qt.ItemFlag.ItemIsEditable

    def setData(self, index: Index, value: object, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: N802
        title = str(value).strip()
        if role != Qt.ItemDataRole.EditRole or not title:
            return False
        self.rename_requested.emit(self.rows[index.row()]["id"], title)
        return True

    def row_of(self, conversation_id: int) -> int:
        """The row showing a conversation, or -1."""
        return next((i for i, row in enumerate(self.rows) if row["id"] == conversation_id), -1)


class ConversationList(QWidget):
    """Emits intents; the window owns the store and calls refresh()."""

    selected = Signal(int)
    new_requested = Signal()
    delete_requested = Signal(int)
    search_changed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        self.new_button = QPushButton("New chat")
        self.new_button.setShortcut(QKeySequence.StandardKey.New)
        self.new_button.clicked.connect(self.new_requested)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search conversations")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(lambda: self.search_changed.emit(self.search.text()))
        self.search.textChanged.connect(self._search_timer.start)
        self.model = ConversationModel()
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setUniformItemSizes(True)
        self.view.setEditTriggers(QListView.EditTrigger.EditKeyPressed | QListView.EditTrigger.DoubleClicked)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._menu)
        self.view.clicked.connect(lambda index: self.selected.emit(index.data(ID_ROLE)))
        delete = QAction("Delete", self.view, shortcut=QKeySequence.StandardKey.Delete)
        delete.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        delete.triggered.connect(self._confirm_delete_current)
        self.view.addAction(delete)
        layout.addWidget(self.new_button)
        layout.addWidget(self.search)
        layout.addWidget(self.view, 1)

    def refresh(self, rows: list[dict], current_id: int | None) -> None:
        """Shows rows and keeps the current conversation highlighted."""
        self.model.set_rows(rows)
        row = self.model.row_of(current_id) if current_id is not None else -1
        if row >= 0:
            self.view.setCurrentIndex(self.model.index(row))

    def _menu(self, pos) -> None:
        index = self.view.indexAt(pos)
        if not index.isValid():
            return
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.view.edit(index))
        menu.addAction("Delete…", lambda: self._confirm_delete(index.data(ID_ROLE), index.data()))
        menu.exec(self.view.viewport().mapToGlobal(pos))

    def _confirm_delete_current(self) -> None:
        index = self.view.currentIndex()
        if index.isValid():
            self._confirm_delete(index.data(ID_ROLE), index.data())

    def _confirm_delete(self, conversation_id: int, title: str) -> None:
        answer = QMessageBox.question(self, "Delete conversation", f"Delete “{title}” and all its messages?")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_requested.emit(conversation_id)
