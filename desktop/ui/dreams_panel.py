"""The Dreams panel: which generation runs, when the next dream may start, a dream's progress, and past dreams."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.ui.charts import BeforeAfterBars, LossCurve

ID_ROLE = Qt.ItemDataRole.UserRole + 1
OUTCOME_MARKS = {"promoted": "✓", "kept": "–", "failed": "✗"}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _measured(report: dict) -> dict[str, bool]:
    """Which of a report's measures the dream had questions for (the others read 0 → 0)."""
    return {"recall": bool(report.get("facts")), "verifiable": bool(report.get("before", {}).get("verifiable_per_family")),
            "corrections": bool(report.get("corrections"))}


def _pass_rates(report: dict) -> str:
    """" · checks 40%→55%", " · fixes 0%→100%" for a dream measured on verifiable prompts or corrections."""
    before, after = report.get("before", {}), report.get("after", {})
    measured = _measured(report)
    return "".join(f" · {label} {before[key]:.0%}→{after[key]:.0%}"
                   for label, key in (("checks", "verifiable"), ("fixes", "corrections")) if measured[key] and key in after)


class DreamsPanel(QWidget):
    """Renders dream state; emits dream_now, stop, and rollback(generation id or None for the base model)."""

    dream_now = Signal()
    stop = Signal()
    rollback = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        self.generation = QLabel(wordWrap=True)
        self.status = QLabel(wordWrap=True)
        row = QHBoxLayout()
        self.dream_button = QPushButton("Dream now")
        self.stop_button = QPushButton("Stop dreaming")
        self.dream_button.clicked.connect(self.dream_now)
        self.stop_button.clicked.connect(self.stop)
        row.addWidget(self.dream_button)
        row.addWidget(self.stop_button)
        self.bar = QProgressBar()
        self.phase = QLabel()
        self.loss = LossCurve()
        self.reward = LossCurve("reward per step: how often sampled answers pass their checks")
        self.history = QListWidget()
        self.history.setWordWrap(True)
        self.history.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.history.currentItemChanged.connect(self._show_selected)
        self.report = QLabel(wordWrap=True, textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)
        self.chart = BeforeAfterBars()
        self.tasks_chart = BeforeAfterBars()
        self.rollback_button = QPushButton("Roll back to this generation")
        self.rollback_button.clicked.connect(self._rollback)
        self.base_button = QPushButton("Use the base model")
        self.base_button.clicked.connect(lambda: self.rollback.emit(None))
        for widget in (self.generation, self.status):
            layout.addWidget(widget)
        layout.addLayout(row)
        for widget in (self.bar, self.phase, self.loss, self.reward, QLabel("<b>Past dreams</b>"), self.history, self.chart,
                       self.tasks_chart, self.report, self.rollback_button, self.base_button):
            layout.addWidget(widget)
        self._dreams: dict[int, dict] = {}
        self.set_running(False)

    def set_running(self, running: bool) -> None:
        self.dream_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.bar.setVisible(running)
        if running:
            self.bar.setRange(0, 0)
            self.loss.clear()
            self.reward.clear()

    def show_progress(self, line: dict) -> None:
        """One progress line from the dream process: bar, phase text, and the loss curve while training."""
        step, total = line.get("step"), line.get("total")
        if step is not None and total:
            self.bar.setRange(0, total)
            self.bar.setValue(step)
        if line.get("loss") is not None and line.get("trainer_phase") == "train" and step is not None:
            self.loss.add(step, line["loss"])
        if line.get("reward") is not None and step is not None:
            self.reward.add(step, line["reward"])
            self.reward.setVisible(True)
        eta = f" · {_minutes(line['eta_s'])} left" if line.get("eta_s") else ""
        self.phase.setText(f"{line.get('phase', '')}: {line.get('message') or ''}{eta}")

    def show_generation(self, generation: dict | None) -> None:
        self.generation.setText(f"<b>Running generation #{generation['id']}</b>" if generation
                                else "<b>Running the base model</b> (no dream promoted yet)")

    def show_dreams(self, dreams: list[dict], generation_of: dict[int, int]) -> None:
        """dreams newest first; generation_of maps a dream id to the generation it promoted."""
        self.history.clear()
        self._dreams = {}
        for dream in dreams:
            dream["generation_id"] = generation_of.get(dream["id"])
            self._dreams[dream["id"]] = dream
            report = dream["report"]
            facts = report.get("facts", 0)
            rates = _pass_rates(report)
            learned = f" · learned {len(report.get('learned', []))}/{facts}" if facts or not rates else ""
            text = (f"{OUTCOME_MARKS.get(dream['outcome'], '?')} {dream['started_at'][:16].replace('T', ' ')} · "
                    f"{dream['outcome']}{learned}{rates} · {_minutes(report.get('duration_s', 0))}")
            item = QListWidgetItem(text)
            item.setData(ID_ROLE, dream["id"])
            item.setToolTip(dream["reason"])
            self.history.addItem(item)
        if self.history.count():
            self.history.setCurrentRow(0)
        else:
            self._show_selected(None)

    def _selected(self) -> dict | None:
        item = self.history.currentItem()
        return self._dreams.get(item.data(ID_ROLE)) if item else None

    def _show_selected(self, *_args) -> None:
        dream = self._selected()
        self.rollback_button.setEnabled(bool(dream and dream["generation_id"]))
        if dream is None:
            self.report.setText("No dreams yet.")
            self.chart.show_rows([])
            self.tasks_chart.setVisible(False)
            self.reward.setVisible(False)
            return
        report = dream["report"]
        before, after = report.get("before", {}), report.get("after", {})
        measured = _measured(report)
        self.chart.show_rows([(name, before[key], after[key]) for name, key in
                              (("recall", "recall"), ("earlier", "earlier"), ("retention", "retention"), ("leaks", "leaks"),
                               ("fixes", "corrections"), ("checks", "verifiable"))
                              if key in before and key in after and measured.get(key, True)])
        families = before.get("verifiable_per_family") or {}
        self.tasks_chart.show_rows([(name, rate, after.get("verifiable_per_family", {}).get(name, 0.0))
                                    for name, rate in families.items()])
        self.tasks_chart.setVisible(bool(families) and "after" in report)
        rewards = report.get("rl", {}).get("rewards", [])
        self.reward.set_points(list(enumerate(rewards, start=1)))
        self.reward.setVisible(bool(rewards))
        learned = "".join(f"<li>{html.escape(text)}</li>" for text in report.get("learned_texts", []))
        pending = "".join(f"<li>{html.escape(text)}</li>" for text in report.get("not_learned_texts", []))
        flipped = "".join(f"<li>{html.escape(c['prompt'])}<br>✗ {html.escape(c['before'][:80])}<br>✓ {html.escape(c['after'][:80])}</li>"
                          for c in report.get("rl", {}).get("changed", []))
        self.report.setText(
            f"<b>{dream['outcome']}</b>: {html.escape(dream['reason'])}<br>"
            f"perplexity {before.get('ppl', 0):.2f} → {after.get('ppl', 0):.2f}"
            + (f"<br><b>Learned</b><ul>{learned}</ul>" if learned else "")
            + (f"<b>Not yet learned</b> (kept in short-term memory)<ul>{pending}</ul>" if pending else "")
            + (f"<br><b>Now passing its check</b><ul>{flipped}</ul>" if flipped else "")
        )

    def _rollback(self) -> None:
        dream = self._selected()
        if dream and dream["generation_id"]:
            self.rollback.emit(dream["generation_id"])
