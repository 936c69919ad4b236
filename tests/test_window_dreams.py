"""Dreams through the window: an idle dream starts by itself and yields the moment the person is back."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt

from desktop.generations import Generations
from window_helpers import fast_settings, open_window

DREAM_START_MS = 30_000
YIELD_S = 2.0


def test_idle_dream_starts_and_yields_to_the_user(qtbot, home):
    fast_settings(home, dream_idle_minutes=0)
    window = open_window(qtbot)
    window.input.setPlainText("My dog is called Biscuit.")
    window.teach_from_input()
    window._last_input -= 1
    window._check_idle()
    assert window.dreamer.running
    assert window.dreams_panel.stop_button.isEnabled() and not window.dreams_panel.dream_button.isEnabled()
    qtbot.waitUntil(lambda: window.dreams_panel.phase.text() != "", timeout=DREAM_START_MS)
    pressed = time.monotonic()
    qtbot.keyClick(window.input, Qt.Key.Key_A)
    qtbot.waitUntil(lambda: not window.dreamer.running, timeout=int(YIELD_S * 1000) + 500)
    assert time.monotonic() - pressed <= YIELD_S + 0.5
    assert window.dreams_panel.dream_button.isEnabled()
    assert Generations(window.state.store).dreams() == []
    assert window.generation_label.text() == "base model"


def test_nothing_to_learn_means_no_dream(qtbot, home):
    fast_settings(home, dream_idle_minutes=0)
    window = open_window(qtbot)
    window._last_input -= 1
    window._check_idle()
    assert not window.dreamer.running
    assert "Nothing new" in window.dreams_panel.status.text()


def test_history_shows_reports_and_rollback_reloads(qtbot, home, model_path):
    """The recorded generation reuses the real base GGUF as its model file: this test is about the panel and the
    reload, not about learning (tests/test_dream.py trains for real)."""
    fast_settings(home)
    window = open_window(qtbot)
    generations = Generations(window.state.store)
    report = {"facts": 2, "learned": [1], "not_learned": [2], "learned_texts": ["My dog is called Biscuit."],
              "not_learned_texts": ["My tea is genmaicha."], "duration_s": 300,
              "before": {"recall": 0.0, "earlier": 0.0, "leaks": 0.0, "retention": 0.9, "ppl": 12.0},
              "after": {"recall": 0.5, "earlier": 0.0, "leaks": 0.0, "retention": 0.9, "ppl": 12.5}}
    promoted = {"parent_id": None, "base_path": str(model_path), "model_path": str(model_path),
                "adapter_path": "adapter.gguf", "metrics": report}
    generations.record_dream("2026-11-27T23:00:00", "promoted", "learned 1 of 2", report, promoted)
    generations.activate(None)
    window.refresh_dreams()
    panel = window.dreams_panel
    assert panel.history.count() == 1 and "learned 1/2" in panel.history.item(0).text()
    assert "Biscuit" in panel.report.text() and "genmaicha" in panel.report.text()
    assert [row[0] for row in panel.chart.rows] == ["recall", "earlier", "retention", "leaks"]
    qtbot.mouseClick(panel.rollback_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=DREAM_START_MS)
    assert window.generation_label.text() == "generation #1"
    qtbot.mouseClick(panel.base_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=DREAM_START_MS)
    assert window.generation_label.text() == "base model"


def test_a_dream_that_learned_from_checks_shows_rewards_families_and_changed_answers(qtbot, home):
    """A recorded report (no training here): the panel draws reward per step and pass rates per task family."""
    fast_settings(home)
    window = open_window(qtbot)
    report = {"facts": 0, "duration_s": 400,
              "before": {"recall": 0.0, "earlier": 0.0, "leaks": 0.0, "retention": 0.9, "ppl": 12.0, "verifiable": 0.4,
                         "verifiable_per_family": {"add": 0.3, "upper": 0.6}},
              "after": {"recall": 0.0, "earlier": 0.0, "leaks": 0.0, "retention": 0.9, "ppl": 12.1, "verifiable": 0.55,
                        "verifiable_per_family": {"add": 0.5, "upper": 0.6}},
              "rl": {"rewards": [0.3, 0.4, 0.6], "changed": [{"prompt": "What is 2 + 3?", "before": "23", "after": "5"}]}}
    Generations(window.state.store).record_dream("2026-11-28T01:00:00", "kept", "test", report)
    window.refresh_dreams()
    panel = window.dreams_panel
    assert "checks 40%→55%" in panel.history.item(0).text()
    assert [row[0] for row in panel.chart.rows][-1] == "checks"
    assert panel.tasks_chart.rows == [("add", 0.3, 0.5), ("upper", 0.6, 0.6)] and not panel.tasks_chart.isHidden()
    assert panel.reward.points == [(1, 0.3), (2, 0.4), (3, 0.6)] and not panel.reward.isHidden()
    assert "What is 2 + 3?" in panel.report.text() and "Now passing" in panel.report.text()


def test_a_dream_of_corrections_draws_them_before_and_after(qtbot, home):
    fast_settings(home)
    window = open_window(qtbot)
    measures = {"recall": 0.0, "earlier": 0.0, "leaks": 0.0, "retention": 0.9, "ppl": 12.0, "verifiable": 0.0,
                "verifiable_per_family": {}, "corrections": 0.0}
    generations = Generations(window.state.store)
    generations.record_dream("2026-11-28T01:00:00", "kept", "none", {"facts": 1, "corrections": 0, "before": measures, "after": measures})
    window.refresh_dreams()
    assert "fixes" not in [row[0] for row in window.dreams_panel.chart.rows]
    report = {"facts": 0, "corrections": 2, "before": measures, "after": {**measures, "corrections": 0.5}}
    generations.record_dream("2026-11-28T02:00:00", "kept", "test", report)
    window.refresh_dreams()
    rows = window.dreams_panel.chart.rows
    assert ("fixes", 0.0, 0.5) in rows and "recall" not in [row[0] for row in rows]
    assert "fixes 0%→50%" in window.dreams_panel.history.item(0).text() and "learned" not in window.dreams_panel.history.item(0).text()
