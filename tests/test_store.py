"""The store keeps chats as message trees in a real SQLite file and refuses files it must not touch."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from desktop.store import MIGRATIONS, NewerSchemaError, Store, StoreError


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "nightschool.db"


@pytest.fixture
def store(db_file: Path):
    opened = Store(db_file)
    yield opened
    opened.close()


def test_create_rename_and_system_prompt(store: Store) -> None:
    cid = store.create_conversation()
    assert store.conversation(cid)["title"] == "New chat"
    store.rename_conversation(cid, "Groceries")
    store.set_system_prompt(cid, "Answer in French.")
    row = store.conversation(cid)
    assert (row["title"], row["system_prompt"], row["current_leaf_id"]) == ("Groceries", "Answer in French.", None)
    assert store.active_path(cid) == []


def test_delete_cascades_to_messages(store: Store) -> None:
    cid = store.create_conversation("Doomed")
    keep = store.create_conversation("Kept")
    mid = store.add_message(cid, "user", "hello")
    kept_mid = store.add_message(keep, "user", "still here")
    store.delete_conversation(cid)
    with pytest.raises(KeyError):
        store.conversation(cid)
    with pytest.raises(KeyError):
        store.message(mid)
    assert store.message(kept_mid)["content"] == "still here"
    assert [c["id"] for c in store.list_conversations()] == [keep]


def test_list_newest_first_and_search(store: Store) -> None:
    recipes = store.create_conversation("Pasta recipes")
    taxes = store.create_conversation("Taxes")
    store.add_message(taxes, "user", "What is 50% of my REFUND?")
    underscore = store.create_conversation("snake_case names")
    assert [c["id"] for c in store.list_conversations()] == [underscore, taxes, recipes]
    store.add_message(recipes, "user", "carbonara please")
    assert store.list_conversations()[0]["id"] == recipes
    assert [c["id"] for c in store.list_conversations("PASTA")] == [recipes]
    assert [c["id"] for c in store.list_conversations("refund")] == [taxes]
    assert [c["id"] for c in store.list_conversations("50%")] == [taxes]
    assert [c["id"] for c in store.list_conversations("%")] == [taxes]
    assert [c["id"] for c in store.list_conversations("e_c")] == [underscore]
    assert store.list_conversations("nothing like this") == []


def test_branches_regenerate_edit_and_select(store: Store) -> None:
    model_id = store.upsert_model("/m/tiny.gguf", "tiny", "llama", "Q4_K_M", 1234)
    cid = store.create_conversation()
    question = store.add_message(cid, "user", "Name a colour")
    first = store.add_message(cid, "assistant", "Red", parent_id=question, model_id=model_id, finish_reason="stop")
    assert [m["id"] for m in store.active_path(cid)] == [question, first]

    regenerated = store.add_message(cid, "assistant", "Blue", parent_id=question, model_id=model_id)
    assert [m["id"] for m in store.siblings(regenerated)] == [first, regenerated]
    assert [m["content"] for m in store.active_path(cid)] == ["Name a colour", "Blue"]

    edited = store.add_message(cid, "user", "Name a fruit")
    answer = store.add_message(cid, "assistant", "Apple", parent_id=edited)
    assert [m["id"] for m in store.siblings(question)] == [question, edited]
    assert [m["id"] for m in store.active_path(cid)] == [edited, answer]

    assert store.select_branch(question) == regenerated
    assert [m["id"] for m in store.active_path(cid)] == [question, regenerated]
    store.set_leaf(cid, first)
    assert [m["content"] for m in store.active_path(cid)] == ["Name a colour", "Red"]
    assert store.select_branch(edited) == answer
    assert store.path_to(answer)[-1]["model_id"] is None
    assert store.message(first)["model_id"] == model_id


def test_finished_answer_keeps_its_reason_and_stats(store: Store) -> None:
    cid = store.create_conversation()
    user = store.add_message(cid, "user", "Go on")
    mid = store.add_message(cid, "assistant", "Done.", parent_id=user, finish_reason="length",
                            stats={"tokens": 3, "tok_per_s": 12.5})
    row = store.message(mid)
    assert (row["content"], row["finish_reason"], row["stats"]) == ("Done.", "length", {"tokens": 3, "tok_per_s": 12.5})
    with pytest.raises(ValueError):
        store.add_message(cid, "assistant", "x", parent_id=user, finish_reason="exploded")
    with pytest.raises(KeyError):
        store.add_message(cid, "assistant", "nobody", parent_id=mid + 1)


def test_upsert_model_reuses_the_row(store: Store) -> None:
    first = store.upsert_model("/m/a.gguf", "a", "llama", "Q4_0", 10)
    again = store.upsert_model("/m/a.gguf", "a renamed", "llama", "Q4_0", 10)
    other = store.upsert_model("/m/a.gguf", "a", "llama", "Q4_0", 11)
    assert first == again != other
    assert store.model(first)["name"] == "a renamed"
    assert store.model(other + 1) is None


def test_parent_from_another_conversation_is_rejected(store: Store) -> None:
    one = store.create_conversation()
    two = store.create_conversation()
    foreign = store.add_message(one, "user", "mine")
    with pytest.raises(ValueError, match=str(foreign)):
        store.add_message(two, "assistant", "yours", parent_id=foreign)
    assert store.active_path(two) == []
    with pytest.raises(ValueError):
        store.set_leaf(two, foreign)


def test_everything_survives_reopen(db_file: Path) -> None:
    store = Store(db_file)
    model_id = store.upsert_model("/m/a.gguf", "a", "llama", "Q8_0", 99)
    cid = store.create_conversation("Kept", "Be brief.")
    question = store.add_message(cid, "user", "hi")
    store.add_message(cid, "assistant", "hello", parent_id=question, model_id=model_id, stats={"ms": 5})
    chosen = store.add_message(cid, "assistant", "hey", parent_id=question)
    store.close()

    reopened = Store(db_file)
    try:
        assert reopened.conversation(cid)["system_prompt"] == "Be brief."
        assert [m["content"] for m in reopened.active_path(cid)] == ["hi", "hey"]
        assert reopened.siblings(chosen)[0]["stats"] == {"ms": 5}
        assert reopened.model(model_id)["quantization"] == "Q8_0"
    finally:
        reopened.close()


def test_wal_mode_and_schema_version(store: Store, db_file: Path) -> None:
    with closing(sqlite3.connect(db_file)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert store.schema_version == len(MIGRATIONS)
    assert not store.is_memory and store.path == db_file


def test_in_memory_store(tmp_path: Path) -> None:
    store = Store(None)
    cid = store.create_conversation("Scratch")
    store.add_message(cid, "user", "not saved")
    assert store.is_memory
    assert store.list_conversations("saved")[0]["title"] == "Scratch"
    assert list(tmp_path.iterdir()) == []
    store.close()


def test_empty_version_zero_file_is_migrated(db_file: Path) -> None:
    sqlite3.connect(db_file).close()
    with sqlite3.connect(db_file) as conn:
        conn.execute("PRAGMA user_version = 0")
    store = Store(db_file)
    assert store.schema_version == len(MIGRATIONS)
    assert store.list_conversations() == []
    store.close()
    with closing(sqlite3.connect(db_file)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"models", "conversations", "messages"} <= tables


def test_version_one_file_is_migrated_and_keeps_its_conversation(db_file: Path) -> None:
    from sqlite_utils import Database

    from desktop.store import MIGRATIONS

    old = Database(db_file)
    MIGRATIONS[0](old)
    old.execute("INSERT INTO conversations VALUES (1, 'Old chat', '', '2026-01-01', '2026-01-01', 2)")
    old.execute("INSERT INTO messages (id, conversation_id, parent_id, role, content, created_at) "
                "VALUES (1, 1, NULL, 'user', 'from version 1', '2026-01-01'), (2, 1, 1, 'assistant', 'hi', '2026-01-01')")
    old.execute("PRAGMA user_version = 1")
    old.conn.commit()
    old.close()
    reopened = Store(db_file)
    assert reopened.schema_version == len(MIGRATIONS) > 1
    path = reopened.active_path(1)
    assert [m["content"] for m in path] == ["from version 1", "hi"]
    assert [m["author"] for m in path] == ["user", "model"]
    reopened.close()


def test_newer_schema_is_refused_and_untouched(db_file: Path) -> None:
    with sqlite3.connect(db_file) as conn:
        conn.execute("PRAGMA user_version = 99")
    before = digest(db_file)
    with pytest.raises(NewerSchemaError) as err:
        Store(db_file)
    message = str(err.value)
    assert str(db_file) in message and "99" in message and "newer Nightschool" in message
    assert digest(db_file) == before


def test_text_file_is_refused_and_untouched(db_file: Path) -> None:
    db_file.write_text("shopping list: eggs, milk\n")
    before = digest(db_file)
    with pytest.raises(StoreError, match="not a Nightschool database") as err:
        Store(db_file)
    assert str(db_file) in str(err.value) and "NIGHTSCHOOL_HOME" in str(err.value)
    assert digest(db_file) == before
    assert sorted(p.name for p in db_file.parent.iterdir()) == [db_file.name]


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.9, 0.99])
def test_truncated_database_is_refused_and_untouched(tmp_path: Path, db_file: Path, fraction: float) -> None:
    source = tmp_path / "real.db"
    store = Store(source)
    cid = store.create_conversation()
    for n in range(200):
        store.add_message(cid, "user", f"message {n} " * 50)
    store.close()
    data = source.read_bytes()
    db_file.write_bytes(data[: int(len(data) * fraction)])
    before = digest(db_file)
    with pytest.raises(StoreError) as err:
        Store(db_file)
    assert str(db_file) in str(err.value)
    assert digest(db_file) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, db_file.name])


def test_foreign_sqlite_file_is_refused(db_file: Path) -> None:
    with sqlite3.connect(db_file) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    before = digest(db_file)
    with pytest.raises(StoreError, match="another program"):
        Store(db_file)
    assert digest(db_file) == before


def test_unusable_folder_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(StoreError, match="not-a-folder"):
        Store(blocker / "nightschool.db")
    with pytest.raises(StoreError, match="is a folder"):
        Store(tmp_path)
