"""The engine on its own thread: the GUI asks through signals and hears back through signals, never blocking."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Sequence

from PySide6.QtCore import QObject, QThread, Signal, Slot

from desktop.engine import ChatMessage, Engine, EngineError, LoadOptions, SamplingParams
from desktop.modelfile import ModelFileError

CHUNK_INTERVAL_S = 0.05
"""Tokens are handed to the GUI at most this often, so it repaints in batches, not per token."""


class EngineWorker(QObject):
    """Lives on the engine thread; its slots run there, one request at a time."""

    loaded = Signal(object, int)
    load_failed = Signal(str)
    chunk = Signal(int, str)
    finished = Signal(int, object)
    failed = Signal(int, str)

    def __init__(self) -> None:
        super().__init__()
        self.engine: Engine | None = None
        self.cancel_event = threading.Event()

    @Slot(object)
    def load(self, options: LoadOptions) -> None:
        """Replaces the loaded model; the old one is freed first so two never sit in memory."""
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        try:
            self.engine = Engine(options)
        except (ModelFileError, EngineError) as err:
            self.load_failed.emit(str(err))
            return
        self.loaded.emit(self.engine.info, self.engine.context_size)

    @Slot(int, object, object)
    def generate(self, request_id: int, messages: Sequence[ChatMessage], params: SamplingParams) -> None:
        """Streams one answer, batching pieces so the GUI thread is woken ~20 times a second."""
        if self.engine is None:
            self.failed.emit(request_id, "No model is loaded. Pick a GGUF model in Settings.")
            return
        pending: list[str] = []
        last = time.perf_counter()

        def collect(piece: str) -> None:
            nonlocal last
            pending.append(piece)
            now = time.perf_counter()
            if now - last >= CHUNK_INTERVAL_S:
                self.chunk.emit(request_id, "".join(pending))
                pending.clear()
                last = now

        try:
            result = self.engine.chat(messages, params, collect, self.cancel_event)
        except EngineError as err:
            self.failed.emit(request_id, str(err))
            return
        if pending:
            self.chunk.emit(request_id, "".join(pending))
        self.finished.emit(request_id, result)


class EngineClient(QObject):
    """The GUI's handle on the engine thread: load, generate, stop, shut down."""

    _load = Signal(object)
    _generate = Signal(int, object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("engine")
        self.worker = EngineWorker()
        self.worker.moveToThread(self._thread)
        self._load.connect(self.worker.load)
        self._generate.connect(self.worker.generate)
        self._ids = itertools.count(1)
        self._thread.start()

    def load(self, options: LoadOptions) -> None:
        """Queues a (re)load behind whatever the engine is doing, after asking it to stop."""
        self.stop()
        self._load.emit(options)

    def generate(self, messages: Sequence[ChatMessage], params: SamplingParams) -> int:
        """Queues one answer and returns the id its signals will carry."""
        request_id = next(self._ids)
        self.worker.cancel_event.clear()
        self._generate.emit(request_id, list(messages), params)
        return request_id

    def stop(self) -> None:
        """Thread-safe: the engine checks the flag between tokens."""
        self.worker.cancel_event.set()

    def shutdown(self) -> None:
        """Stops generation, ends the thread and frees the model."""
        self.stop()
        self._thread.quit()
        self._thread.wait()
        if self.worker.engine is not None:
            self.worker.engine.close()
            self.worker.engine = None
