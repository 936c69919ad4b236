"""Signals core on a real SQLite file: marks, corrections, checks, taught items, import and TRL-shaped export."""

from __future__ import annotations

import json

import pytest

from conftest import BENCH
from desktop.export import build_rows, export
from desktop.importer import ImportFormatError, import_file
from desktop.inbox import learning_inbox
from desktop.signals import Signals, acknowledge
from desktop.store import Store
from desktop.verifiers import verify


@pytest.fixture
def signals(tmp_path):
    return Signals(Store(tmp_path / "signals.db"))


def exchange(signals: Signals, question: str, answer: str, cid: int | None = None) -> int:
    store = signals.store
    cid = cid or store.create_conversation()
    user = store.add_message(cid, "user", question, parent_id=store.conversation(cid)["current_leaf_id"])
    return store.add_message(cid, "assistant", answer, parent_id=user)


def test_marks_are_undoable_and_keep_their_history(signals):
    answer = exchange(signals, "2+2?", "4")
    signals.mark(answer, "incorrect")
    signals.mark(answer, "correct", reason="it is four")
    assert signals.current_mark(answer)["value"] == "correct"
    assert signals.current_mark(answer)["reason"] == "it is four"
    signals.unmark(answer)
    assert signals.current_mark(answer) is None
    rows = signals.db.execute("SELECT value, revoked_at IS NOT NULL FROM signals ORDER BY id").fetchall()
    assert rows == [("incorrect", 1), ("correct", 1)]
    with pytest.raises(ValueError):
        signals.mark(answer, "maybe")
    with pytest.raises(ValueError, match="not an answer"):
        signals.mark(signals.store.message(answer)["parent_id"], "correct")


def test_correction_is_a_user_written_sibling_and_keeps_the_original(signals):
    answer = exchange(signals, "What is 17+25?", "32")
    corrected = signals.correct(answer, "42")
    store = signals.store
    assert store.message(answer)["content"] == "32"
    assert store.message(corrected)["author"] == "user"
    assert [m["id"] for m in store.siblings(answer)] == [answer, corrected]
    assert store.active_path(store.message(answer)["conversation_id"])[-1]["id"] == corrected
    assert signals.badges(answer)["corrected_by"] == corrected
    assert signals.badges(corrected)["correction_of"] == answer


def test_excluded_marks_and_corrections_stay_listed_but_are_not_learned(signals):
    wrong = exchange(signals, "What is 17+25?", "32")
    signals.correct(wrong, "42")
    good = exchange(signals, "What is 2+2?", "4")
    mark = signals.mark(good, "correct")
    correction = signals.corrections()[0]["id"]
    assert len(build_rows(signals)["sft"]) == 2 and len(build_rows(signals)["preference"]) == 1
    signals.set_signal_excluded(correction, True)
    signals.set_signal_excluded(mark, True)
    rows = build_rows(signals)
    assert rows["sft"] == [] and rows["preference"] == [] and rows["kto"] == []
    inbox = learning_inbox(signals)
    assert inbox["counts"]["corrections"] == 0 and inbox["counts"]["marked_correct"] == 0
    assert [c["excluded"] for c in inbox["corrections"]] == [1] and [m["answer"] for m in inbox["marks"]] == ["4"]
    signals.set_signal_excluded(correction, False)
    assert learning_inbox(signals)["counts"]["corrections"] == 1 and len(build_rows(signals)["preference"]) == 1
    with pytest.raises(KeyError, match="no signal 999"):
        signals.set_signal_excluded(999, True)


def test_checks_attach_to_questions_and_verdicts_are_signals(signals):
    answer = exchange(signals, "What is 17+25? Answer with just the number.", "32")
    question = signals.store.message(answer)["parent_id"]
    with pytest.raises(ValueError, match="not a question"):
        signals.add_check(answer, {"kind": "numeric", "answer": 42})
    signals.add_check(question, {"kind": "numeric", "answer": 42})
    [check] = signals.checks_for(question)
    result = verify(check["spec"], "32")
    signals.record_verification(answer, check["spec"], result)
    [verdict] = signals.badges(answer)["verifications"]
    assert verdict["value"] == "failed" and verdict["source"] == "verifier"
    assert verdict["result"]["found"] == 32 and verdict["spec"]["answer"] == 42


def test_taught_items_edit_exclude_delete(signals):
    cid = signals.store.create_conversation()
    taught = signals.teach(cid, "My dog is called Biscuit.")
    item = signals.taught_item(taught)
    assert item["acknowledgement"] == "Noted: your dog is called Biscuit."
    assert [m["role"] for m in signals.store.active_path(cid)] == ["user", "assistant"]
    signals.edit_taught(taught, "My dog is called Biscuit and she is a corgi.")
    item = signals.taught_item(taught)
    assert item["original_text"] == "My dog is called Biscuit."
    assert item["acknowledgement"] == "Noted: your dog is called Biscuit and she is a corgi."
    assert signals.store.active_path(cid)[0]["content"] == "My dog is called Biscuit."
    signals.set_taught_excluded(taught, True)
    assert build_rows(signals)["sft"] == []
    signals.set_taught_excluded(taught, False)
    assert len(build_rows(signals)["sft"]) == 1
    signals.delete_taught(taught)
    assert signals.taught_items() == [] and len(signals.store.active_path(cid)) == 2


def test_acknowledgement_speaks_to_the_user():
    assert acknowledge("I live in Lisbon.") == "Noted: you live in Lisbon."
    assert acknowledge("I was born in 1987, when I wasn't yet in Oslo.") == "Noted: you were born in 1987, when you weren't yet in Oslo."
    assert acknowledge("My father was born in Leeds.") == "Noted: your father was born in Leeds."
    assert acknowledge("Our project is codenamed Tangerine") == "Noted: your project is codenamed Tangerine."


def test_export_rows_have_the_shapes_trl_reads(signals, tmp_path):
    cid = signals.store.create_conversation(system_prompt="Be brief.")
    signals.teach(cid, "My tea is genmaicha.")
    wrong = exchange(signals, "What is 17+25?", "32", cid)
    signals.mark(wrong, "incorrect")
    signals.correct(wrong, "42")
    first = exchange(signals, "Name a colour.", "blue")
    signals.store.add_message(signals.store.message(first)["conversation_id"], "assistant", "bleu",
                                       parent_id=signals.store.message(first)["parent_id"])
    signals.mark(first, "correct")
    lonely = exchange(signals, "Name a fruit.", "car")
    signals.mark(lonely, "incorrect")
    counts = export(signals, "all", tmp_path / "out")
    assert counts == {"sft": 3, "preference": 2, "kto": 1}
    rows = {name: [json.loads(line) for line in (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()]
            for name in counts}
    for row in rows["sft"]:
        assert set(row) == {"messages"}
        assert row["messages"][-1]["role"] == "assistant"
        assert all(set(m) == {"role", "content"} for m in row["messages"])
    for row in rows["preference"]:
        assert set(row) == {"prompt", "chosen", "rejected"}
        assert row["prompt"][-1]["role"] == "user"
        assert [m["role"] for m in row["chosen"] + row["rejected"]] == ["assistant", "assistant"]
    by_chosen = {row["chosen"][0]["content"]: row for row in rows["preference"]}
    assert by_chosen["42"]["rejected"][0]["content"] == "32"
    assert by_chosen["42"]["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert by_chosen["blue"]["rejected"][0]["content"] == "bleu"
    [kto] = rows["kto"]
    assert set(kto) == {"prompt", "completion", "label"} and kto["label"] is False
    assert kto["completion"] == [{"role": "assistant", "content": "car"}]
    single = export(signals, "sft", tmp_path / "only.jsonl")
    assert single == {"sft": 3} and len((tmp_path / "only.jsonl").read_text().splitlines()) == 3


def test_verifier_results_feed_export_and_a_mark_overrides_them(signals):
    answer = exchange(signals, "What is 2+2?", "4")
    spec = {"kind": "numeric", "answer": 4}
    signals.record_verification(answer, spec, verify(spec, "4"))
    assert len(build_rows(signals)["kto"]) == 1 and build_rows(signals)["kto"][0]["label"] is True
    signals.mark(answer, "incorrect")
    assert build_rows(signals)["kto"][0]["label"] is False


@pytest.mark.skipif(not BENCH.exists(), reason="shared bench data not present")
def test_import_both_public_bench_files_once(signals):
    recall = import_file(signals, BENCH / "recall-public.jsonl")
    tasks = import_file(signals, BENCH / "verifiable-public.jsonl")
    assert recall["taught"] == 40 and recall["probes"] >= 80
    assert tasks["tasks"] == 155
    assert import_file(signals, BENCH / "recall-public.jsonl")["taught"] == 0
    assert import_file(signals, BENCH / "verifiable-public.jsonl")["tasks"] == 0
    item = signals.taught_items()[0]
    assert item["text"] == "My dog is called Biscuit and she is a corgi."
    assert item["acknowledgement"] == "Noted: your dog Biscuit is a corgi."
    kinds = {p["kind"] for p in signals.probes(item["id"])}
    assert kinds == {"probe", "near_miss"}
    assert len(signals.tasks("eval")) == 52 and len(signals.tasks("train")) == 103
    assert {t["family"] for t in signals.tasks()} == {"add", "sub", "upper", "json", "py", "regex"}
    exported = json.dumps(build_rows(signals))
    assert "What is my dog's name?" not in exported and "cat's name" not in exported
    counts = learning_inbox(signals)["counts"]
    assert counts["taught"] == 40 and counts["pending_tasks"] == 103 and counts["sft_rows"] == 40


def test_import_refuses_unknown_shapes_naming_the_line(signals, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"teach": [{"role": "user", "content": "x"}]}\n{"hello": 1}\n')
    with pytest.raises(ImportFormatError, match="line 2"):
        import_file(signals, bad)
    assert signals.taught_items() == []
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(ImportFormatError, match="broken.jsonl"):
        import_file(signals, broken)
