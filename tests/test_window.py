"""The window on the real model and a real database, driven as a user would (offscreen)."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from PySide6.QtCore import Qt

from desktop import paths
from desktop.settings import Settings, load_settings
from desktop.store import Store
from window_helpers import ANSWER_TIMEOUT_MS, LOAD_TIMEOUT_MS, ask, fast_settings, open_window, shown

def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_message_and_answer_appear_in_view_and_database(qtbot, home):
    fast_settings(home)
    window = open_window(qtbot)
    assert "Q4_1" in window.model_label.text()
    ask(qtbot, window, "What is the capital of Japan?")
    roles = [role for role, _ in shown(window)]
    assert roles == ["user", "assistant"]
    assert "Tokyo" in shown(window)[1][1]
    assert "tok/s" in window.speed_label.text()
    assert window.context_label.text().startswith("context ")
    rows = sqlite3.connect(home / paths.DB_NAME).execute("select role, content from messages order by id").fetchall()
    assert rows[0] == ("user", "What is the capital of Japan?")
    assert "Tokyo" in rows[1][1]
    assert window.conversations.model.rows[0]["title"] == "What is the capital of Japan?"


def test_shift_enter_adds_a_line_instead_of_sending(qtbot, home):
    fast_settings(home)
    window = open_window(qtbot)
    qtbot.keyClicks(window.input, "first line")
    qtbot.keyClick(window.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.input, "second line")
    assert window.input.toPlainText() == "first line\nsecond line"
    assert window.pending is None and window.chat.views == []


def test_stop_keeps_the_partial_answer(qtbot, home):
    fast_settings(home, max_tokens=400, temperature=0.8)
    window = open_window(qtbot)
    window.input.setPlainText("Write a very long story about a dragon who learns to read.")
    window.input.submit()
    qtbot.waitUntil(lambda: window.chat.streaming is not None and bool(window.chat.streaming.message["content"]), timeout=ANSWER_TIMEOUT_MS)
    assert window.send_button.text() == "Stop"
    qtbot.mouseClick(window.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.pending is None, timeout=ANSWER_TIMEOUT_MS)
    answer = window.state.store.active_path(window.current_id)[-1]
    assert answer["finish_reason"] == "stopped"
    assert 0 < answer["stats"]["generated_tokens"] < 400
    assert window.state_label.text() == "Stopped"
    assert window.send_button.text() == "Send"


def test_regenerate_keeps_siblings_and_user_can_step_between_them(qtbot, home):
    fast_settings(home, temperature=0.9)
    window = open_window(qtbot)
    ask(qtbot, window, "Name a colour.")
    first = window.chat.views[-1].message["id"]
    qtbot.mouseClick(window.chat.views[-1].regenerate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.pending is None, timeout=ANSWER_TIMEOUT_MS)
    last = window.chat.views[-1]
    assert last.sibling_label.text() == "2/2"
    assert last.message["id"] != first
    qtbot.mouseClick(last.prev_button, Qt.MouseButton.LeftButton)
    assert window.chat.views[-1].message["id"] == first
    assert window.chat.views[-1].sibling_label.text() == "1/2"


def test_edit_resends_as_a_branch_and_keeps_the_original(qtbot, home):
    fast_settings(home)
    window = open_window(qtbot)
    ask(qtbot, window, "What is the capital of England?")
    question = window.chat.views[0]
    question.start_edit()
    question.editor.setPlainText("What is the capital of China?")
    window.chat.views[0]._submit_edit()
    qtbot.waitUntil(lambda: window.pending is None, timeout=ANSWER_TIMEOUT_MS)
    assert shown(window)[0] == ("user", "What is the capital of China?")
    assert "Beijing" in shown(window)[1][1]
    assert window.chat.views[0].sibling_label.text() == "2/2"
    qtbot.mouseClick(window.chat.views[0].prev_button, Qt.MouseButton.LeftButton)
    assert shown(window)[0] == ("user", "What is the capital of England?")
    assert "London" in shown(window)[1][1]


def test_branches_survive_a_restart(qtbot, home):
    fast_settings(home, temperature=0.9)
    window = open_window(qtbot)
    ask(qtbot, window, "Name a fruit.")
    window.regenerate_last()
    qtbot.waitUntil(lambda: window.pending is None, timeout=ANSWER_TIMEOUT_MS)
    before = shown(window)
    window.close()

    again = open_window(qtbot)
    assert shown(again) == before
    assert again.chat.views[-1].sibling_label.text() == "2/2"


def test_conversations_new_rename_search_delete_and_system_prompt(qtbot, home):
    fast_settings(home)
    window = open_window(qtbot)
    ask(qtbot, window, "What is the capital of Japan?")
    japan = window.current_id
    window.system_prompt.setText("Answer in one word.")
    window.system_prompt.editingFinished.emit()
    assert window.state.store.conversation(japan)["system_prompt"] == "Answer in one word."
    qtbot.mouseClick(window.conversations.new_button, Qt.MouseButton.LeftButton)
    assert window.current_id != japan and window.chat.views == []
    assert window.system_prompt.text() == ""
    ask(qtbot, window, "What is the chemical symbol for water?")
    model = window.conversations.model
    model.setData(model.index(model.row_of(japan)), "Geography")
    assert window.state.store.conversation(japan)["title"] == "Geography"
    window.conversations.search.setText("tokyo")
    qtbot.waitUntil(lambda: [r["id"] for r in model.rows] == [japan], timeout=2000)
    window.conversations.search.clear()
    qtbot.waitUntil(lambda: len(model.rows) == 2, timeout=2000)
    window.delete_conversation(japan)
    assert [r["id"] for r in model.rows] != [] and japan not in [r["id"] for r in model.rows]
    window.open_conversation(model.rows[0]["id"])
    assert shown(window)[0] == ("user", "What is the chemical symbol for water?")


def test_settings_persist_and_a_model_change_reloads(qtbot, home):
    fast_settings(home)
    window = open_window(qtbot)
    window.apply_settings(Settings(**{**vars(window.state.settings), "temperature": 0.3, "n_ctx": 1024}))
    assert load_settings(home / paths.SETTINGS_NAME).temperature == pytest.approx(0.3)
    qtbot.waitUntil(lambda: window.context_size == 1024, timeout=LOAD_TIMEOUT_MS)


def test_bad_model_file_is_reported_and_the_app_stays_usable(qtbot, home, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 7)
    fast_settings(home, model_path=str(bad))
    window = open_window(qtbot, wait_for_model=False)
    qtbot.waitUntil(window.banner.isVisible, timeout=LOAD_TIMEOUT_MS)
    assert "broken.gguf" in window.banner_label.text()
    assert window.model_info is None and not window.send_button.isEnabled()
    window.new_conversation()
    assert len(window.conversations.model.rows) == 1
    window.apply_settings(Settings(**{**vars(window.state.settings), "model_path": ""}))
    qtbot.waitUntil(lambda: window.model_info is not None, timeout=LOAD_TIMEOUT_MS)
    ask(qtbot, window, "What is the capital of Japan?")
    assert "Tokyo" in shown(window)[1][1]


def test_database_that_is_not_sqlite_is_left_untouched(qtbot, home):
    fast_settings(home)
    db = home / paths.DB_NAME
    db.write_text("my precious notes, not a database\n" * 100)
    before = digest(db)
    window = open_window(qtbot)
    assert str(db) in window.banner_label.text() and window.banner.isVisible()
    ask(qtbot, window, "What is the capital of Japan?")
    assert "Tokyo" in shown(window)[1][1]
    window.close()
    assert digest(db) == before


def test_database_from_a_newer_version_is_left_untouched(qtbot, home):
    fast_settings(home)
    db = home / paths.DB_NAME
    store = Store(db)
    cid = store.create_conversation("kept")
    store.close()
    with sqlite3.connect(db) as raw:
        raw.execute("PRAGMA user_version = 99")
    before = digest(db)
    window = open_window(qtbot)
    assert "newer" in window.banner_label.text() and str(db) in window.banner_label.text()
    window.close()
    assert digest(db) == before
    with sqlite3.connect(db) as raw:
        assert raw.execute("select title from conversations where id = ?", (cid,)).fetchone() == ("kept",)


def test_unwritable_data_folder_is_reported_and_chat_still_works(qtbot, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NIGHTSCHOOL_HOME", str(blocker / "data"))
    window = open_window(qtbot)
    assert "not writable" in window.banner_label.text() and str(blocker / "data") in window.banner_label.text()
    window.state.settings.max_tokens = 20
    ask(qtbot, window, "What is the capital of Japan?")
    assert shown(window)[0] == ("user", "What is the capital of Japan?")
    assert window.state.store.is_memory


def test_full_disk_is_reported_and_loses_nothing(qtbot, home):
    fast_settings(home)
    window = open_window(qtbot)
    ask(qtbot, window, "What is the capital of Japan?")
    before = shown(window)
    db = window.state.store.db
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    window.input.setPlainText("Tell me about England. " * 400)
    qtbot.keyClick(window.input, Qt.Key.Key_Return)
    assert "disk is full" in window.banner_label.text()
    assert window.pending is None and window.send_button.text() == "Send"
    window.open_conversation(window.current_id)
    assert shown(window) == before
