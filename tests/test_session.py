"""Conversation logic on a real SQLite file and the real model: answers, regenerations, edits, restarts."""

from __future__ import annotations

from desktop.session import ChatSession, title_from
from desktop.store import Store

from conftest import GREEDY


def answer(session: ChatSession, engine, pending):
    return session.finish(pending, engine.chat(pending.messages, GREEDY), session.register_model(engine.info))


def test_send_stores_question_answer_and_model(tmp_path, engine):
    store = Store(tmp_path / "chat.db")
    session = ChatSession(store)
    cid = store.create_conversation()
    answer_id = answer(session, engine, session.send(cid, "What is the capital of Japan?"))
    path = store.active_path(cid)
    assert [m["role"] for m in path] == ["user", "assistant"]
    assert "Tokyo" in path[1]["content"]
    assert path[1]["finish_reason"] == "stop"
    assert path[1]["stats"]["generated_tokens"] > 0
    model = store.model(store.message(answer_id)["model_id"])
    assert model["architecture"] == "llama" and model["quantization"] == "Q4_1"
    assert store.conversation(cid)["title"] == "What is the capital of Japan?"


def test_system_prompt_goes_first(tmp_path):
    store = Store(tmp_path / "chat.db")
    session = ChatSession(store)
    cid = store.create_conversation(system_prompt="Answer in French.")
    pending = session.send(cid, "Hello")
    assert pending.messages[0] == {"role": "system", "content": "Answer in French."}
    assert pending.messages[-1] == {"role": "user", "content": "Hello"}


def test_branches_and_siblings_survive_a_restart(tmp_path, engine):
    db = tmp_path / "chat.db"
    store = Store(db)
    session = ChatSession(store)
    cid = store.create_conversation()
    first = answer(session, engine, session.send(cid, "What is the capital of England?"))
    second = answer(session, engine, session.regenerate(first))
    assert [m["id"] for m in store.siblings(second)] == [first, second]
    question = store.active_path(cid)[0]["id"]
    edited = session.edit(question, "What is the capital of China?")
    third = answer(session, engine, edited)
    assert [m["content"] for m in store.siblings(edited.parent_id)] == [
        "What is the capital of England?",
        "What is the capital of China?",
    ]
    assert "Beijing" in store.message(third)["content"]
    store.close()

    reopened = Store(db)
    again = ChatSession(reopened)
    assert reopened.active_path(cid)[-1]["id"] == third
    leaf = again.step_sibling(edited.parent_id, -1)
    assert leaf == second
    assert [m["id"] for m in reopened.active_path(cid)] == [question, second]
    assert again.step_sibling(second, -1) == first
    assert again.step_sibling(first, -1) == first


def test_stopped_answer_is_kept_with_its_reason(tmp_path, engine):
    import threading

    store = Store(tmp_path / "chat.db")
    session = ChatSession(store)
    cid = store.create_conversation()
    pending = session.send(cid, "Tell me a story.")
    cancel = threading.Event()
    cancel.set()
    result = engine.chat(pending.messages, GREEDY, cancel=cancel)
    mid = session.finish(pending, result, None)
    assert store.message(mid)["finish_reason"] == "stopped"
    assert store.message(mid)["content"] == result.text


def test_title_is_shortened():
    assert title_from("  a   b  ") == "a b"
    long = title_from("x" * 100)
    assert len(long) <= 48 and long.endswith("…")
