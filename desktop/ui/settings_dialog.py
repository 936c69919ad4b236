"""The settings dialog: renders a Settings and returns an edited copy; it saves nothing itself."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from desktop.settings import Settings

CHAT_FORMATS = ("", "chatml", "gemma", "llama-3", "mistral-instruct", "phi3", "qwen")
MAX_THREADS = 256
MAX_CONTEXT = 131072
MIN_CONTEXT = 256
MAX_GPU_LAYERS = 999
MAX_ANSWER_TOKENS = 32768
MAX_MEMORY_ITEMS = 50
GGUF_FILTER = "GGUF models (*.gguf);;All files (*)"


def pick_model_file(parent: QWidget, start: str = "") -> str:
    """Asks for a GGUF file; empty when cancelled."""
    path, _ = QFileDialog.getOpenFileName(parent, "Choose a GGUF chat model", start, GGUF_FILTER)
    return path


class SettingsDialog(QDialog):
    """Model file, threads, context, GPU layers (only where llama.cpp has a GPU backend) and sampling."""

    def __init__(self, settings: Settings, gpu_offload: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._settings = settings
        form = QFormLayout(self)
        self.model_path = QLineEdit(settings.model_path)
        self.model_path.setPlaceholderText("embedded default: SmolLM2-135M-Instruct (Q4_1)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        default = QPushButton("Default")
        default.clicked.connect(self.model_path.clear)
        row = QHBoxLayout()
        row.addWidget(self.model_path, 1)
        row.addWidget(browse)
        row.addWidget(default)
        form.addRow("Model file", row)
        self.threads = self._spin(0, MAX_THREADS, settings.n_threads, "0 = auto: one per core, minus one for the window")
        form.addRow("Threads", self.threads)
        self.n_ctx = self._spin(MIN_CONTEXT, MAX_CONTEXT, settings.n_ctx, "tokens the model keeps in view")
        self.n_ctx.setSingleStep(MIN_CONTEXT)
        form.addRow("Context size", self.n_ctx)
        self.gpu_layers = self._spin(0, MAX_GPU_LAYERS, settings.n_gpu_layers, "layers offloaded to the GPU")
        self.gpu_layers.setEnabled(gpu_offload)
        if not gpu_offload:
            self.gpu_layers.setToolTip("This llama.cpp build has no GPU backend (see README: GPU).")
        form.addRow("GPU layers", self.gpu_layers)
        self.temperature = self._double(0.0, 2.0, settings.temperature, "0 = always the most likely token")
        form.addRow("Temperature", self.temperature)
        self.top_p = self._double(0.0, 1.0, settings.top_p, "nucleus sampling")
        form.addRow("Top-p", self.top_p)
        self.max_tokens = self._spin(1, MAX_ANSWER_TOKENS, settings.max_tokens, "longest answer in tokens")
        form.addRow("Max answer tokens", self.max_tokens)
        self.memory_items = self._spin(0, MAX_MEMORY_ITEMS, settings.memory_items, "taught items and corrections added to each question; 0 = off")
        form.addRow("Short-term memory", self.memory_items)
        self.chat_format = QComboBox()
        self.chat_format.setEditable(True)
        self.chat_format.addItems(CHAT_FORMATS)
        self.chat_format.setItemText(0, "")
        self.chat_format.setCurrentText(settings.chat_format)
        self.chat_format.setToolTip("Empty: the chat template stored in the GGUF")
        form.addRow("Chat format", self.chat_format)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    @staticmethod
    def _spin(low: int, high: int, value: int, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    @staticmethod
    def _double(low: float, high: float, value: float, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(low, high)
        spin.setSingleStep(0.05)
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    def _browse(self) -> None:
        path = pick_model_file(self, self.model_path.text())
        if path:
            self.model_path.setText(path)

    def result_settings(self) -> Settings:
        """The edited settings; the caller decides what needs a reload."""
        return replace(
            self._settings,
            model_path=self.model_path.text().strip(),
            n_threads=self.threads.value(),
            n_ctx=self.n_ctx.value(),
            n_gpu_layers=self.gpu_layers.value(),
            temperature=self.temperature.value(),
            top_p=self.top_p.value(),
            max_tokens=self.max_tokens.value(),
            memory_items=self.memory_items.value(),
            chat_format=self.chat_format.currentText().strip(),
        )
