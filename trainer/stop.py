"""SIGTERM ends a run within moments: the signal becomes an exception wherever the main thread is."""

from __future__ import annotations

import signal
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any


class Interrupted(BaseException):
    """Raised in the main thread on SIGTERM or SIGINT; a BaseException so no library's `except Exception` eats it."""


class StopSignal:
    """Turns SIGTERM/SIGINT into Interrupted right away, except inside held() sections, which finish first."""

    def __init__(self) -> None:
        self.pending = False
        self._held = 0

    def install(self) -> None:
        """Routes SIGTERM and SIGINT here (main thread only, as Python requires)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, _signum: int, _frame: object) -> None:
        """Stops now, or once the held section ends."""
        self.pending = True
        if not self._held:
            raise Interrupted

    @contextmanager
    def held(self) -> Iterator[None]:
        """Defers a stop until the block ends, so an optimizer step or a checkpoint is never left half done."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
        if self.pending and not self._held:
            raise Interrupted


def make_backward_interruptible(parameters: Iterable[Any]) -> None:
    """Gives the interpreter a moment per parameter during backward, so a pending signal lands mid-pass.

    Python runs signal handlers only between bytecodes, and loss.backward() is one C++ call that can take
    seconds; a no-op hook on each trainable tensor lets the handler run as each layer's gradient arrives.
    """
    for parameter in parameters:
        parameter.register_hook(lambda grad: None)
