"""The JSON lines the trainer prints on stdout, one per event, for the app's progress bar and loss curve."""

from __future__ import annotations

import json
import resource
import sys
from typing import Literal, NotRequired, TextIO, TypedDict

Phase = Literal["load", "data", "train", "export", "merge", "done", "error", "interrupted"]
KIB_PER_MIB = 1024  # ru_maxrss is in KiB on Linux


class Progress(TypedDict):
    """One progress line; numbers that do not apply to a phase are null."""

    phase: Phase
    step: int
    total: int
    loss: float | None
    tok_s: float | None
    eta_s: float | None
    peak_rss_mb: float
    message: NotRequired[str]
    reward: NotRequired[float]
    """GRPO's expected reward on the step's sampled answers under the policy being trained."""


def peak_rss_mb() -> float:
    """The process's peak resident memory so far."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB, 1)


class Reporter:
    """Prints progress lines and keeps the running tokens/s and ETA of the training phase."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.step = 0
        self.total = 0
        self._tokens = 0
        self._seconds = 0.0
        self._steps_timed = 0

    def emit(self, phase: Phase, *, loss: float | None = None, message: str | None = None,
             reward: float | None = None) -> Progress:
        """Prints one line for phase, carrying the step counters and the latest speed."""
        tok_s = self._tokens / self._seconds if self._seconds > 0 else None
        eta = (self.total - self.step) * self._seconds / self._steps_timed if self._steps_timed else None
        line: Progress = {
            "phase": phase,
            "step": self.step,
            "total": self.total,
            "loss": None if loss is None else round(loss, 5),
            "tok_s": None if tok_s is None else round(tok_s, 1),
            "eta_s": None if eta is None else round(eta, 1),
            "peak_rss_mb": peak_rss_mb(),
        }
        if message is not None:
            line["message"] = message
        if reward is not None:
            line["reward"] = round(reward, 4)
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()
        return line

    def step_done(self, step: int, loss: float, tokens: int, seconds: float, reward: float | None = None) -> Progress:
        """Records a finished training step and prints its line."""
        self.step = step
        self._tokens += tokens
        self._seconds += seconds
        self._steps_timed += 1
        return self.emit("train", loss=loss, reward=reward)

    @property
    def tok_s(self) -> float:
        """Real (non-padding) training tokens per second over the steps timed in this process."""
        return self._tokens / self._seconds if self._seconds > 0 else 0.0
