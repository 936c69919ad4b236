"""The 'Add check' dialog: pick a verifier kind, fill in its spec as JSON, validated before it is accepted."""

from __future__ import annotations

import json

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from desktop.verifiers import KINDS, SpecError, parse_spec

TEMPLATES = {
    "exact": {"answer": ""},
    "numeric": {"answer": 0, "tolerance": 0},
    "contains": {"any": [""]},
    "regex": {"pattern": ""},
    "json": {"equals": {}},
    "python": {"tests": "assert f(1) == 1"},
}


class CheckDialog(QDialog):
    """Returns a parsed spec through spec() after OK."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a check")
        layout = QVBoxLayout(self)
        self.kind = QComboBox()
        self.kind.addItems(KINDS)
        self.fields = QPlainTextEdit()
        self.error = QLabel(objectName="check-error")
        self.error.setStyleSheet("color: #b91c1c")
        self.kind.currentTextChanged.connect(lambda kind: self.fields.setPlainText(json.dumps(TEMPLATES.get(kind, {}), indent=2)))
        self.kind.setCurrentText("numeric")
        self.fields.setPlainText(json.dumps(TEMPLATES["numeric"], indent=2))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(QLabel("Kind"))
        layout.addWidget(self.kind)
        layout.addWidget(QLabel("Spec (JSON)"))
        layout.addWidget(self.fields)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self._spec: dict | None = None

    def accept(self) -> None:
        """Refuses to close on a spec the verifier would reject, and says why."""
        try:
            fields = json.loads(self.fields.toPlainText() or "{}")
            self._spec = parse_spec({**fields, "kind": self.kind.currentText()})
        except (ValueError, SpecError) as err:
            self.error.setText(str(err))
            return
        super().accept()

    def spec(self) -> dict | None:
        return self._spec
