"""The main window: conversation list, chat, input and status bar, wired to the session and the engine thread."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QApplication,
    QWidget,
)

from desktop.boot import Boot, load_options, model_path, sampling
from desktop.engine import GenerationResult, backend_info
from desktop.modelfile import ModelFileError, ModelInfo
from desktop.session import ChatSession, PendingAnswer
from desktop.settings import Settings, save_settings
from desktop import paths
from desktop.generations import Generations
from desktop.idle import dream_due, on_ac_power
from desktop.inbox import learning_inbox
from desktop.signals import Signals
from desktop.store import StoreError
from desktop.ui.background import Background
from desktop.ui.chat_view import ChatView, Decor
from desktop.ui.check_dialog import CheckDialog
from desktop.ui.conversation_list import ConversationList
from desktop.ui.dream_runner import DreamRunner
from desktop.ui.dreams_panel import DreamsPanel
from desktop.ui.engine_worker import EngineClient
from desktop.ui.inbox_panel import InboxPanel
from desktop.ui.input_box import InputBox
from desktop.ui.settings_dialog import SettingsDialog, pick_model_file
from desktop.ui.taught_panel import TaughtPanel
from desktop.verifiers import propose_spec, verify

SIDEBAR_WIDTH = 240
WINDOW_SIZE = (1100, 760)
STATUS_PADDING = 8
IDLE_CHECK_MS = 5000
"""How often the window asks whether a dream is due."""
USER_INPUT = (QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.Wheel)


def reports_store_errors(intent: Callable[..., Any]) -> Callable[..., Any]:
    """A user intent whose write fails (a full disk, say) shows why in the banner; the store rolled it back."""

    @functools.wraps(intent)
    def guarded(self: "MainWindow", *args: Any) -> Any:
        try:
            return intent(self, *args)
        except StoreError as err:
            self.show_banner(str(err))
            return None

    return guarded


class MainWindow(QMainWindow):
    """Owns the session and the engine client; widgets only render and emit intents."""

    def __init__(self, state: Boot, model_override: str | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Nightschool")
        self.resize(*WINDOW_SIZE)
        self.state = state
        self.session = ChatSession(state.store, state.settings.memory_items)
        self.signals = Signals(state.store)
        self.engine = EngineClient(self)
        self.background = Background(self)
        self._check_jobs: dict[int, int] = {}
        self.generations = Generations(state.store)
        self.generation: dict | None = None
        self.dreamer = DreamRunner(self)
        self._last_input = time.monotonic()
        self._dream_requested = False
        self.model_info: ModelInfo | None = None
        self.model_id: int | None = None
        self.context_size = 0
        self.current_id: int | None = None
        self.pending: PendingAnswer | None = None
        self.request_id: int | None = None
        self._model_override = model_override
        self._gpu_offload = backend_info()["gpu_offload"]
        self._build()
        self._connect()
        for warning in state.warnings:
            self.show_banner(warning)
        self.refresh_conversations()
        self.refresh_signals()
        self.refresh_dreams()
        rows = self.conversations.model.rows
        if rows:
            self.open_conversation(rows[0]["id"])
        self.load_model()

    # ---- layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        self.conversations = ConversationList()
        self.conversations.setMinimumWidth(SIDEBAR_WIDTH // 2)
        self.banner = QFrame(objectName="banner")
        banner_row = QHBoxLayout(self.banner)
        self.banner_label = QLabel(wordWrap=True, textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)
        dismiss = QPushButton("×", flat=True, toolTip="Dismiss")
        dismiss.clicked.connect(self.banner.hide)
        banner_row.addWidget(self.banner_label, 1)
        banner_row.addWidget(dismiss, 0, Qt.AlignmentFlag.AlignTop)
        self.banner.hide()
        self.system_prompt = QLineEdit(placeholderText="System prompt for this conversation (optional)")
        self.chat = ChatView()
        self.input = InputBox()
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        self.teach_button = QPushButton("Teach", toolTip="Remember what you typed (Ctrl+T)")
        input_row = QHBoxLayout()
        input_row.addWidget(self.input, 1)
        input_row.addWidget(self.teach_button, 0, Qt.AlignmentFlag.AlignBottom)
        input_row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        right = QWidget()
        column = QVBoxLayout(right)
        column.setContentsMargins(8, 8, 8, 8)
        column.addWidget(self.banner)
        column.addWidget(self.system_prompt)
        column.addWidget(self.chat, 1)
        column.addLayout(input_row)
        splitter = QSplitter()
        splitter.addWidget(self.conversations)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([SIDEBAR_WIDTH, WINDOW_SIZE[0] - SIDEBAR_WIDTH])
        self.setCentralWidget(splitter)
        self.taught_panel = TaughtPanel()
        self.inbox_panel = InboxPanel()
        self.dreams_panel = DreamsPanel()
        self.docks = {}
        for title, panel in (("Taught", self.taught_panel), ("Learning inbox", self.inbox_panel),
                             ("Dreams", self.dreams_panel)):
            dock = QDockWidget(title, self, objectName=title)
            dock.setWidget(panel)
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            self.docks[title] = dock
        self.tabifyDockWidget(self.docks["Taught"], self.docks["Learning inbox"])
        self.tabifyDockWidget(self.docks["Learning inbox"], self.docks["Dreams"])
        self.docks["Taught"].raise_()
        self.model_label = QLabel("no model")
        self.generation_label = QLabel("base model")
        self.context_label = QLabel()
        self.speed_label = QLabel()
        self.state_label = QLabel()
        bar = self.statusBar()
        for label in (self.state_label, self.generation_label, self.model_label, self.context_label, self.speed_label):
            label.setContentsMargins(STATUS_PADDING, 0, STATUS_PADDING, 0)
            bar.addPermanentWidget(label)
        self._build_menus()

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction("&New chat", QKeySequence.StandardKey.New, self.new_conversation)
        file_menu.addAction("&Open model…", QKeySequence("Ctrl+O"), self.choose_model)
        file_menu.addAction("&Settings…", QKeySequence("Ctrl+,"), self.open_settings)
        file_menu.addSeparator()
        file_menu.addAction("&Quit", QKeySequence.StandardKey.Quit, self.close)
        chat_menu = self.menuBar().addMenu("&Chat")
        self.stop_action = QAction("&Stop", self, shortcut=QKeySequence("Esc"), triggered=self.stop)
        chat_menu.addAction(self.stop_action)
        chat_menu.addAction("&Regenerate last answer", QKeySequence("Ctrl+R"), self.regenerate_last)
        chat_menu.addAction("&Teach", QKeySequence("Ctrl+T"), self.teach_from_input)
        feedback = self.menuBar().addMenu("Fee&dback")
        feedback.addAction("Mark last answer &correct", QKeySequence("Ctrl+1"), lambda: self._mark_last("correct"))
        feedback.addAction("Mark last answer &incorrect", QKeySequence("Ctrl+2"), lambda: self._mark_last("incorrect"))
        feedback.addAction("&Write the right answer…", QKeySequence("Ctrl+Shift+E"), self._correct_last)
        view = self.menuBar().addMenu("&View")
        for dock in self.docks.values():
            view.addAction(dock.toggleViewAction())

    def _connect(self) -> None:
        self.conversations.selected.connect(self.open_conversation)
        self.conversations.new_requested.connect(self.new_conversation)
        self.conversations.delete_requested.connect(self.delete_conversation)
        self.conversations.search_changed.connect(lambda _text: self.refresh_conversations())
        self.conversations.model.rename_requested.connect(self.rename_conversation)
        self.system_prompt.editingFinished.connect(self._save_system_prompt)
        self.input.submitted.connect(self.send)
        self.send_button.clicked.connect(self._send_or_stop)
        self.chat.intents.regenerate.connect(self.regenerate)
        self.chat.intents.edit_submitted.connect(self.edit)
        self.chat.intents.step.connect(self.step_sibling)
        self.chat.intents.mark.connect(self.set_mark)
        self.chat.intents.correction.connect(self.correct_answer)
        self.chat.intents.add_check.connect(self.ask_for_check)
        self.chat.intents.attach_proposal.connect(self.attach_check)
        self.teach_button.clicked.connect(self.teach_from_input)
        self.taught_panel.edit_requested.connect(lambda tid, text: self._signal_change(self.signals.edit_taught, tid, text))
        self.taught_panel.exclude_requested.connect(lambda tid, ex: self._signal_change(self.signals.set_taught_excluded, tid, ex))
        self.inbox_panel.exclude_requested.connect(self._exclude_from_learning)
        self.taught_panel.delete_requested.connect(lambda tid: self._signal_change(self.signals.delete_taught, tid))
        self.dreams_panel.dream_now.connect(self.start_dream)
        self.dreams_panel.stop.connect(self.dreamer.stop)
        self.dreams_panel.rollback.connect(self.roll_back)
        self.dreamer.progress.connect(self.dreams_panel.show_progress)
        self.dreamer.finished.connect(self._on_dream_finished)
        QApplication.instance().installEventFilter(self)
        self._idle_timer = QTimer(self, interval=IDLE_CHECK_MS)
        self._idle_timer.timeout.connect(self._check_idle)
        self._idle_timer.start()
        QTimer.singleShot(0, self._check_idle)
        self.background.finished.connect(self._on_checks_done)
        self.background.failed.connect(lambda _ticket, message: self.show_banner(f"A check could not run: {message}"))
        worker = self.engine.worker
        worker.loaded.connect(self._on_loaded)
        worker.load_failed.connect(self._on_load_failed)
        worker.chunk.connect(self._on_chunk)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)

    # ---- model --------------------------------------------------------------------------------

    def load_model(self) -> None:
        """Loads the chosen model on the engine thread; the window stays usable meanwhile."""
        try:
            base = model_path(self.state.settings, self._model_override)
        except ModelFileError as err:
            self._on_load_failed(str(err))
            return
        self.generation = self.generations.active(base)
        path = Path(self.generation["model_path"]) if self.generation else base
        self.generation_label.setText(f"generation #{self.generation['id']}" if self.generation else "base model")
        self.dreams_panel.show_generation(self.generation)
        self.model_info = None
        self._set_state(f"Loading {Path(path).name}…")
        self._update_controls()
        self.engine.load(load_options(self.state.settings, path))

    @reports_store_errors
    def _on_loaded(self, info: ModelInfo, context_size: int) -> None:
        self.model_info = info
        self.context_size = context_size
        self.model_id = self.session.register_model(info)
        self.model_label.setText(f"{info.name} · {info.quantization}")
        self.model_label.setToolTip(str(info.path))
        self.context_label.setText(f"context 0/{context_size}")
        self._set_state("Ready")
        self._update_controls()

    def _on_load_failed(self, message: str) -> None:
        self.model_label.setText("no model")
        self._set_state("No model")
        self.show_banner(message)
        self._update_controls()

    def choose_model(self) -> None:
        """File → Open model: any GGUF chat model; its chat template comes from the file."""
        path = pick_model_file(self, self.state.settings.model_path)
        if path:
            self._model_override = None
            self.apply_settings(replace(self.state.settings, model_path=path))

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.state.settings, self._gpu_offload, self)
        if dialog.exec():
            self.apply_settings(dialog.result_settings())

    def apply_settings(self, settings: Settings) -> None:
        """Saves settings and reloads the model only if something that needs a reload changed."""
        old = self.state.settings
        self.state.settings = settings
        self.session.memory_limit = settings.memory_items
        if self.state.settings_file is not None:
            try:
                save_settings(settings, self.state.settings_file)
            except OSError as err:
                self.show_banner(f"Settings could not be saved to '{self.state.settings_file}': {err}")
        if settings.model_path != old.model_path:
            self._model_override = None
        if settings.needs_reload(old):
            self.load_model()

    # ---- conversations ------------------------------------------------------------------------

    def refresh_conversations(self) -> None:
        self.conversations.refresh(self.state.store.list_conversations(self.conversations.search.text()), self.current_id)

    @reports_store_errors
    def new_conversation(self) -> int:
        self.current_id = self.state.store.create_conversation()
        self.refresh_conversations()
        self.open_conversation(self.current_id)
        self.input.setFocus()
        return self.current_id

    def open_conversation(self, conversation_id: int) -> None:
        self.current_id = conversation_id
        self.system_prompt.setText(self.state.store.conversation(conversation_id)["system_prompt"])
        self.refresh_chat()

    @reports_store_errors
    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self.state.store.rename_conversation(conversation_id, title)
        self.refresh_conversations()

    @reports_store_errors
    def delete_conversation(self, conversation_id: int) -> None:
        if self.pending is not None and self.pending.conversation_id == conversation_id:
            self.show_banner("Stop the answer being written in this conversation before deleting it.")
            return
        self.state.store.delete_conversation(conversation_id)
        if self.current_id == conversation_id:
            self.current_id = None
            self.chat.show_messages([], {})
            self.system_prompt.clear()
        self.refresh_conversations()

    @reports_store_errors
    def _save_system_prompt(self) -> None:
        text = self.system_prompt.text()
        if self.current_id is None:
            if not text.strip():
                return
            self.new_conversation()
        self.state.store.set_system_prompt(self.current_id, text)

    def refresh_chat(self) -> None:
        """Redraws the active branch with each message's place among its siblings."""
        if self.current_id is None:
            self.chat.show_messages([], {})
            return
        messages = self.state.store.active_path(self.current_id)
        taught = {t[key] for t in self.signals.taught_items() for key in ("user_message_id", "answer_message_id")}
        self.chat.show_messages(messages, {m["id"]: self._decor(m, m["id"] in taught) for m in messages})
        if self.pending is not None and self.pending.conversation_id == self.current_id:
            self.chat.begin_stream()

    def _decor(self, message: dict, taught: bool) -> Decor:
        """A card's extras: sibling position, and the mark, verdicts or proposed check that belong to it."""
        ids = [m["id"] for m in self.state.store.siblings(message["id"])]
        decor = Decor(index=ids.index(message["id"]), count=len(ids), taught=taught)
        if message["role"] == "assistant":
            badges = self.signals.badges(message["id"])
            decor.mark = badges["mark"]["value"] if badges["mark"] else None
            decor.reason = badges["mark"]["reason"] if badges["mark"] else ""
            decor.verifications = badges["verifications"]
        elif message["role"] == "user" and not taught:
            decor.checks = len(self.signals.checks_for(message["id"]))
            decor.proposal = propose_spec(message["content"]) if decor.checks == 0 else None
        return decor

    # ---- signals ------------------------------------------------------------------------------

    def refresh_signals(self) -> None:
        """Redraws the taught list and the learning inbox after any signal changes."""
        self.taught_panel.show_items(self.signals.taught_items())
        self.inbox_panel.show_inbox(learning_inbox(self.signals))

    @reports_store_errors
    def _signal_change(self, change, *args) -> None:
        change(*args)
        self.refresh_signals()
        self.refresh_chat()

    def _exclude_from_learning(self, where: str, item_id: int, excluded: bool) -> None:
        change = self.signals.set_taught_excluded if where == "taught" else self.signals.set_signal_excluded
        self._signal_change(change, item_id, excluded)

    def set_mark(self, message_id: int, value: str | None, reason: str = "") -> None:
        """✓ / ✗ on an answer; None undoes the mark (its history is kept)."""
        if value is None:
            self._signal_change(self.signals.unmark, message_id)
        else:
            self._signal_change(self.signals.mark, message_id, value, reason)

    def correct_answer(self, message_id: int, text: str) -> None:
        """The person's right answer becomes the active sibling; the original stays as the rejected one."""
        self._signal_change(self.signals.correct, message_id, text)

    @reports_store_errors
    def teach_from_input(self) -> None:
        """Teach: what is in the input box is remembered, acknowledged in the chat and listed under Taught."""
        text = self.input.toPlainText().strip()
        if not text or self.pending is not None:
            return
        self.input.clear()
        if self.current_id is None:
            self.new_conversation()
        self.session.name_if_new(self.current_id, text)
        taught_id = self.signals.teach(self.current_id, text)
        self.refresh_signals()
        self.refresh_chat()
        self.refresh_conversations()
        self.taught_panel.select(taught_id)

    def _last_answer(self) -> int | None:
        answers = [v.message["id"] for v in self.chat.views if v.message["role"] == "assistant" and v.message["id"]]
        return answers[-1] if answers else None

    def _mark_last(self, value: str) -> None:
        answer = self._last_answer()
        if answer is not None:
            current = self.signals.current_mark(answer)
            self.set_mark(answer, None if current and current["value"] == value else value)

    def _correct_last(self) -> None:
        for view in reversed(self.chat.views):
            if view.message["role"] == "assistant" and view.message["id"]:
                view.start_correction()
                return

    def ask_for_check(self, answer_id: int) -> None:
        """'Add check…' on an answer: the check attaches to its question and runs on this answer at once."""
        dialog = CheckDialog(self)
        if dialog.exec() and dialog.spec():
            self.attach_check(self.state.store.message(answer_id)["parent_id"], dialog.spec(), "user", answer_id)

    @reports_store_errors
    def attach_check(self, question_id: int, spec: dict, source: str = "proposed", answer_id: int | None = None) -> None:
        self.signals.add_check(question_id, spec, source)
        if answer_id is None:
            answers = [m["id"] for m in self.state.store.active_path(self.current_id) if m["parent_id"] == question_id]
            answer_id = answers[0] if answers else None
        self.refresh_chat()
        if answer_id is not None:
            self.run_checks(answer_id)

    def run_checks(self, answer_id: int) -> None:
        """Runs every check of the answer's question on the thread pool (the code sandbox can take seconds)."""
        answer = self.state.store.message(answer_id)
        specs = [check["spec"] for check in self.signals.checks_for(answer["parent_id"])]
        if not specs:
            return
        text = answer["content"]
        ticket = self.background.submit(lambda: [(spec, verify(spec, text)) for spec in specs])
        self._check_jobs[ticket] = answer_id

    @reports_store_errors
    def _on_checks_done(self, ticket: int, results: list) -> None:
        answer_id = self._check_jobs.pop(ticket, None)
        if answer_id is None:
            return
        for spec, result in results:
            self.signals.record_verification(answer_id, spec, result)
        self.refresh_signals()
        self.refresh_chat()

    # ---- dreams -------------------------------------------------------------------------------

    def refresh_dreams(self) -> None:
        self.dreams_panel.show_dreams(self.generations.dreams(), self.generations.promoted_by_dream())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt naming)
        """Any key, click or scroll counts as the person being back: a running dream yields at once."""
        if event.type() in USER_INPUT:
            self._last_input = time.monotonic()
            if self.dreamer.running and not self._dream_requested:
                self.dreamer.stop()
        return False

    def _check_idle(self) -> None:
        if self.dreamer.running or self.state.store.is_memory:
            return
        new_items = self.signals.count_since(self.generations.last_dream_at())
        due, why = dream_due(self.state.settings, time.monotonic() - self._last_input, self.pending is not None,
                             new_items, on_ac_power())
        self.dreams_panel.status.setText(why)
        if due:
            self._start_dream(requested=False)

    def start_dream(self) -> None:
        """Dream now (button, menu): runs even though the person is at the keyboard."""
        self._start_dream(requested=True)

    def _start_dream(self, requested: bool) -> None:
        if self.dreamer.running or self.state.store.is_memory:
            return
        try:
            base = model_path(self.state.settings, self._model_override)
        except ModelFileError as err:
            self.show_banner(str(err))
            return
        self._dream_requested = requested
        self.dreams_panel.set_running(True)
        self.dreams_panel.status.setText("Dreaming…")
        self.state_label.setText("Dreaming…")
        self.dreamer.start(paths.db_path(), base, max(1, os.cpu_count() or 1))

    def _on_dream_finished(self, code: int, message: str) -> None:
        self.dreams_panel.set_running(False)
        self.dreams_panel.status.setText(message or f"The dream ended (exit code {code}).")
        self._set_state("Ready" if self.pending is None else "Generating…")
        self.refresh_dreams()
        self.refresh_signals()
        before = self.generation
        if self.generations.active(model_path(self.state.settings, self._model_override)) != before:
            self.load_model()

    @reports_store_errors
    def roll_back(self, generation_id: int | None) -> None:
        """Switches to an earlier generation (or the base model) without restarting; the conversation goes on."""
        self.generations.activate(generation_id)
        self.load_model()

    # ---- chatting -----------------------------------------------------------------------------

    @reports_store_errors
    def send(self, text: str) -> None:
        """Enter in the input box: a new user message under the active branch, then its answer."""
        if not self._can_generate():
            self.input.setPlainText(text)
            return
        if self.current_id is None:
            self.new_conversation()
        self._start(self.session.send(self.current_id, text))
        self.refresh_conversations()

    @reports_store_errors
    def regenerate(self, assistant_id: int) -> None:
        if self._can_generate():
            self._start(self.session.regenerate(assistant_id))

    def regenerate_last(self) -> None:
        answers = [m for m in self.chat.views if m.message["role"] == "assistant" and m.message["id"]]
        if answers:
            self.regenerate(answers[-1].message["id"])

    @reports_store_errors
    def edit(self, user_id: int, text: str) -> None:
        if self._can_generate():
            self._start(self.session.edit(user_id, text))

    @reports_store_errors
    def step_sibling(self, message_id: int, step: int) -> None:
        if self.pending is None:
            self.session.step_sibling(message_id, step)
            self.refresh_chat()

    def stop(self) -> None:
        """Stops the answer after the current token; what was written so far is kept."""
        if self.pending is not None:
            self.engine.stop()
            self._set_state("Stopping…")

    def _send_or_stop(self) -> None:
        if self.pending is not None:
            self.stop()
        else:
            self.input.submit()

    def _can_generate(self) -> bool:
        if self.pending is not None:
            return False
        if self.model_info is None:
            self.show_banner("No model is loaded yet. Wait for it to load, or pick a GGUF model in File → Open model.")
            return False
        return True

    def _start(self, pending: PendingAnswer) -> None:
        self.pending = pending
        self.current_id = pending.conversation_id
        self.refresh_chat()
        self.request_id = self.engine.generate(pending.messages, sampling(self.state.settings))
        self._set_state("Generating…")
        self._update_controls()

    def _on_chunk(self, request_id: int, text: str) -> None:
        if request_id == self.request_id and self.pending and self.pending.conversation_id == self.current_id:
            self.chat.append_stream(text)

    def _on_finished(self, request_id: int, result: GenerationResult) -> None:
        if request_id != self.request_id or self.pending is None:
            return
        self.speed_label.setText(f"{result.decode_tok_s:.1f} tok/s")
        self.context_label.setText(f"context {result.context_used}/{self.context_size}")
        try:
            answer_id = self.session.finish(self.pending, result, self.model_id)
        except StoreError as err:
            self.show_banner(f"{err} The answer on screen was not saved.")
            self._end_request("Not saved", redraw=False)
            return
        self.run_checks(answer_id)
        self._end_request("Ready" if result.finish_reason != "stopped" else "Stopped")

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id == self.request_id:
            self.show_banner(message)
            self._end_request("Ready")

    def _end_request(self, state: str, redraw: bool = True) -> None:
        self.pending = None
        self.request_id = None
        self._set_state(state)
        self._update_controls()
        if redraw:
            self.refresh_chat()
            self.refresh_conversations()

    # ---- status -------------------------------------------------------------------------------

    def show_banner(self, message: str) -> None:
        """Problems are shown in the window, never only in a log."""
        self.banner_label.setText(message)
        self.banner.show()

    def _set_state(self, text: str) -> None:
        self.state_label.setText(text)

    def _update_controls(self) -> None:
        generating = self.pending is not None
        self.send_button.setText("Stop" if generating else "Send")
        self.send_button.setEnabled(generating or self.model_info is not None)
        self.stop_action.setEnabled(generating)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt naming)
        """Stops the engine, a dream and pending checks first, so nothing late reaches the closed database."""
        QApplication.instance().removeEventFilter(self)
        self._idle_timer.stop()
        self.dreamer.finished.disconnect()
        self.dreamer.shutdown()
        worker = self.engine.worker
        for signal in (worker.loaded, worker.load_failed, worker.chunk, worker.finished, worker.failed,
                       self.background.finished, self.background.failed):
            signal.disconnect()
        self.engine.shutdown()
        self.background.wait()
        self.state.store.close()
        super().closeEvent(event)
