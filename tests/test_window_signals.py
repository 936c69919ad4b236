"""Signals through the window (real model, real database): marks, reasons, corrections, teach, checks, inbox."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from desktop.ui.check_dialog import CheckDialog
from window_helpers import ask, fast_settings, open_window, shown

CHECK_TIMEOUT_MS = 30_000


def last_answer(window):
    return [v for v in window.chat.views if v.message["role"] == "assistant"][-1]


def test_mark_by_click_is_undoable_and_takes_a_reason(qtbot, home):
    fast_settings(home)
    window = open_window(qtbot)
    ask(qtbot, window, "What is the capital of Japan?")
    answer_id = last_answer(window).message["id"]
    qtbot.mouseClick(last_answer(window).correct_button, Qt.MouseButton.LeftButton)
    assert window.signals.current_mark(answer_id)["value"] == "correct"
    assert last_answer(window).correct_button.isChecked()
    card = last_answer(window)
    qtbot.keyClicks(card.reason_box, "Tokyo is right")
    qtbot.keyClick(card.reason_box, Qt.Key.Key_Return)
    assert window.signals.current_mark(answer_id)["reason"] == "Tokyo is right"
    qtbot.mouseClick(last_answer(window).correct_button, Qt.MouseButton.LeftButton)
    assert window.signals.current_mark(answer_id) is None
    assert not last_answer(window).correct_button.isChecked()
    assert window.inbox_panel.counts["marked_correct"].text() == "0"


def test_keyboard_shortcuts_mark_the_last_answer(qtbot, home):
    fast_settings(home)
    window = open_window(qtbot)
    ask(qtbot, window, "What is the capital of England?")
    answer_id = last_answer(window).message["id"]
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.signals.current_mark(answer_id)["value"] == "incorrect"
    assert window.inbox_panel.counts["marked_incorrect"].text() == "1"
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.signals.current_mark(answer_id)["value"] == "correct"
    qtbot.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert last_answer(window).editor is not None


def test_writing_the_right_answer_keeps_the_original_and_can_be_kept_out_of_dreams(qtbot, home):
    fast_settings(home)
    window = open_window(qtbot)
    ask(qtbot, window, "What is 17+25?")
    original = last_answer(window).message
    card = last_answer(window)
    card.start_correction()
    card.editor.setPlainText("17 + 25 = 42")
    card._submit_correction()
    assert shown(window)[-1] == ("assistant", "17 + 25 = 42")
    assert last_answer(window).message["author"] == "user"
    assert last_answer(window).sibling_label.text() == "2/2"
    assert window.state.store.message(original["id"])["content"] == original["content"]
    assert window.inbox_panel.counts["corrections"].text() == "1"
    assert window.inbox_panel.counts["preference_pairs"].text() == "1"
    inbox = window.inbox_panel
    texts = [inbox.items.item(row).text() for row in range(inbox.items.count())]
    inbox.items.setCurrentRow(next(row for row, text in enumerate(texts) if text.startswith("Corrected")))
    qtbot.mouseClick(inbox.exclude_button, Qt.MouseButton.LeftButton)
    assert inbox.counts["corrections"].text() == "0" and inbox.counts["preference_pairs"].text() == "0"
    assert inbox.items.currentItem().text().endswith("(not learned from)")
    assert inbox.exclude_button.text() == "Learn this again"
    qtbot.mouseClick(inbox.exclude_button, Qt.MouseButton.LeftButton)
    assert inbox.counts["preference_pairs"].text() == "1"


def test_teach_lists_the_item_and_the_panel_edits_excludes_deletes(qtbot, home):
    fast_settings(home)
    window = open_window(qtbot)
    window.input.setPlainText("My dog is called Biscuit.")
    qtbot.mouseClick(window.teach_button, Qt.MouseButton.LeftButton)
    assert shown(window) == [("user", "My dog is called Biscuit."), ("assistant", "Noted: your dog is called Biscuit.")]
    assert window.taught_panel.list.count() == 1
    assert window.conversations.model.rows[0]["title"] == "My dog is called Biscuit."
    [item] = window.signals.taught_items()
    window.taught_panel.edit_requested.emit(item["id"], "My dog is called Biscuit; she is a corgi.")
    assert window.signals.taught_item(item["id"])["original_text"] == "My dog is called Biscuit."
    qtbot.mouseClick(window.taught_panel.exclude_button, Qt.MouseButton.LeftButton)
    assert window.signals.taught_item(item["id"])["excluded"] == 1
    assert "(excluded)" in window.taught_panel.list.item(0).text()
    assert window.inbox_panel.counts["taught"].text() == "0"
    window.taught_panel.list.setCurrentRow(0)
    qtbot.mouseClick(window.taught_panel.delete_button, Qt.MouseButton.LeftButton)
    assert window.taught_panel.list.count() == 0 and window.signals.taught_items() == []


def test_proposed_check_runs_off_the_gui_thread_and_shows_a_badge(qtbot, home):
    fast_settings(home)
    window = open_window(qtbot)
    ask(qtbot, window, "What is 17+25? Answer with just the number.")
    question = [v for v in window.chat.views if v.message["role"] == "user"][-1]
    assert question.decor.proposal == {"kind": "numeric", "answer": None}
    question.proposal_value.setText("42")
    question._attach(question.decor.proposal)
    qtbot.waitUntil(lambda: not window._check_jobs and bool(last_answer(window).badges), timeout=CHECK_TIMEOUT_MS)
    badge = last_answer(window).badges[0]
    answer = last_answer(window).message["content"]
    expected = "passed" if "42" in answer else "failed"
    assert badge.text() == f"numeric check {expected}"
    assert window.inbox_panel.counts[f"verified_{expected}"].text() == "1"
    window.regenerate_last()
    qtbot.waitUntil(lambda: window.pending is None and not window._check_jobs, timeout=CHECK_TIMEOUT_MS)
    qtbot.waitUntil(lambda: bool(last_answer(window).badges), timeout=CHECK_TIMEOUT_MS)
    assert last_answer(window).sibling_label.text() == "2/2"


def test_add_check_dialog_validates_and_attaches(qtbot, home):
    fast_settings(home)
    window = open_window(qtbot)
    ask(qtbot, window, "What is the capital of Japan?")
    dialog = CheckDialog(window)
    dialog.kind.setCurrentText("contains")
    dialog.fields.setPlainText("{not json")
    dialog.accept()
    assert dialog.result() == 0 and dialog.error.text()
    dialog.fields.setPlainText('{"any": ["Tokyo"]}')
    dialog.accept()
    assert dialog.spec() == {"kind": "contains", "any": ["Tokyo"]}
    answer_id = last_answer(window).message["id"]
    window.attach_check(window.state.store.message(answer_id)["parent_id"], dialog.spec(), "user", answer_id)
    qtbot.waitUntil(lambda: not window._check_jobs and bool(last_answer(window).badges), timeout=CHECK_TIMEOUT_MS)
    assert last_answer(window).badges[0].text() == "contains check passed"
