"""A real dream on the default model (tiny recipe): trains through the trainer process, measures, records."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop.dream import DreamRecipe, run_dream
from desktop.engine import Engine, LoadOptions
from desktop.generations import Generations
from desktop.signals import Signals
from desktop.store import Store
from desktop.verifiers import verify

TINY = DreamRecipe(min_replay=2, min_replay_checks=2, replay_fraction=0.1,
                   train={"lr": 1e-3, "epochs": 1, "max_steps": 3, "seq_len": 256, "batch_size": 4, "warmup_steps": 1,
                          "merge_type": "q8_0", "checkpoint_every": 1})
FACT = "My dog is called Biscuit and she is a corgi."
RELEASE = "We always release to production on Wednesdays."


@pytest.fixture
def taught_db(tmp_path):
    db = tmp_path / "dream.db"
    store = Store(db)
    for text in (FACT, RELEASE):
        Signals(store).teach(store.create_conversation(), text)
    store.close()
    retention = tmp_path / "retention.jsonl"
    retention.write_text(json.dumps({"question": "What is the capital of Japan?", "expect": ["Tokyo"]}) + "\n")
    return db, retention


def test_a_dream_trains_measures_and_records_itself(taught_db, model_path):
    db, retention = taught_db
    lines = []
    report = run_dream(db, model_path, 2, lines.append, TINY, retention)
    phases = [line["phase"] for line in lines]
    assert phases[0] == "evaluate" and "rehearse" in phases and "train" in phases and phases[-1] == "done"
    assert any(line.get("trainer_phase") == "train" and line.get("loss") is not None for line in lines)
    assert report["outcome"] in ("promoted", "kept")
    assert set(report["before"]) == {"recall", "earlier", "leaks", "retention", "ppl", "verifiable", "verifiable_per_family",
                                     "corrections"}
    assert report["rl"]["prompts"] == 0 and report["after"]["verifiable_per_family"] == {}
    assert len(report["losses"]) == 3 and report["examples"] > 5
    run_dir = Path(report["run_dir"])
    assert json.loads((run_dir / "config.json").read_text())["seed"] == TINY.seed
    assert sorted(report["learned_texts"] + report["not_learned_texts"]) == sorted([FACT, RELEASE])  # the person's words
    assert "on Wednesday each week" in (run_dir / "data" / "sft.jsonl").read_text()  # the rows' spelling
    store = Store(db)
    generations = Generations(store)
    [dream] = generations.dreams()
    assert dream["outcome"] == report["outcome"] and dream["report"]["after"] == report["after"]
    active = generations.active(model_path)
    assert not (run_dir / "checkpoint.pt").exists()
    assert json.loads((run_dir / "metrics.json").read_text())["examples"]["unlikely"] > 0  # near frames went through the trainer
    assert (run_dir / "merged.gguf").exists() == (report["outcome"] == "promoted")
    if report["outcome"] == "promoted":
        assert active is not None and active["adapter_path"].endswith("adapter.gguf")
        engine = Engine(LoadOptions(model_path=active["model_path"], n_ctx=512, n_threads=2))
        engine.close()
        assert Signals(store).taught_items()[0]["learned_generation_id"] in (None, active["id"])
    else:
        assert active is None and dream["reason"]


def test_a_dream_stopped_midway_changes_nothing(taught_db, model_path):
    db, _retention = taught_db
    process = subprocess.Popen([sys.executable, "-m", "desktop.dream", "--db", str(db), "--model", str(model_path),
                                "--threads", "2"], stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if json.loads(line)["phase"] == "rehearse":
            break
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    rest = process.stdout.read()
    assert process.wait(timeout=30) == 3
    assert time.monotonic() - started < 5
    assert json.loads(rest.strip().splitlines()[-1])["phase"] == "interrupted"
    store = Store(db)
    assert Generations(store).dreams() == [] and Generations(store).active(model_path) is None
    assert len(Signals(store).taught_items()) == 2
    store.close()


def test_a_dream_of_corrections_alone_is_judged_on_other_wordings_of_the_corrected_questions(tmp_path, model_path):
    """Before, such a dream had nothing held out to show it learned, so the gate always refused it."""
    db = tmp_path / "dream.db"
    store = Store(db)
    signals = Signals(store)
    cid = store.create_conversation()
    question = store.add_message(cid, "user", "What is the password of our office wifi?")
    signals.correct(store.add_message(cid, "assistant", "I don't know.", parent_id=question), "The office wifi password is Zephyrine.")
    store.close()
    retention = tmp_path / "retention.jsonl"
    retention.write_text(json.dumps({"question": "What is the capital of Japan?", "expect": ["Tokyo"]}) + "\n")
    report = run_dream(db, model_path, 2, lambda _line: None, TINY, retention)
    came_back = report["after"]["corrections"]
    assert report["before"]["corrections"] == 0.0 and came_back in (0.0, 0.5, 1.0) and report["corrections"] == 2
    assert ("did not learn" in report["reason"]) == (came_back == 0.0)


def test_a_dream_learns_from_checkable_prompts_and_keeps_passing_answers(tmp_path, model_path):
    """RLVR through the real dream path, tiny: sample, score, GRPO step, measure the held-out prompt, keep solutions."""
    db = tmp_path / "dream.db"
    store = Store(db)
    signals = Signals(store)
    signals.add_task("What is 2 + 2? Reply with just the number.", {"kind": "numeric", "answer": 4}, "train", "test", "add")
    signals.add_task("What is 3 + 5? Reply with just the number.", {"kind": "numeric", "answer": 8}, "train", "test", "add")
    signals.add_task("What is 4 + 4? Reply with just the number.", {"kind": "numeric", "answer": 8}, "eval", "test", "add")
    store.close()
    retention = tmp_path / "retention.jsonl"
    retention.write_text(json.dumps({"question": "What is the capital of Japan?", "expect": ["Tokyo"]}) + "\n")
    recipe = DreamRecipe(min_replay=2, min_replay_checks=2, rl_prompts=2, rl_samples=4, rl_first_samples=4,
                         rl_train={**TINY.train, "max_steps": 2, "lr": 1e-4, "grpo_batch": 8})
    lines = []
    report = run_dream(db, model_path, 2, lines.append, recipe, retention)
    assert any("checkable prompts" in (line.get("message") or "") for line in lines)
    assert report["rl"]["prompts"] == 2 and report["rl"]["answers"] == 8 and report["rl"]["held_out"] == 1
    assert set(report["after"]["verifiable_per_family"]) == {"add"} and len(report["losses"]) == 2
    store = Store(db)
    [dream] = Generations(store).dreams()
    assert dream["report"]["rl"]["rewards"] == report["rl"]["rewards"]
    solutions = Signals(store).solutions()
    passed = round(report["rl"]["sampled_pass_rate"] * 8)
    assert len(solutions) <= passed and bool(solutions) == bool(passed)
    expected = {"What is 2 + 2? Reply with just the number.": 4, "What is 3 + 5? Reply with just the number.": 8}
    assert all(row["dream_id"] == dream["id"] and verify({"kind": "numeric", "answer": expected[row["prompt"]]}, row["answer"]).passed
               for row in solutions)
    trained = [json.loads(line)["messages"] for line in (Path(report["run_dir"]) / "data" / "sft.jsonl").read_text().splitlines()]
    shortest = {row["prompt"]: min(len(r["answer"]) for r in solutions if r["prompt"] == row["prompt"]) for row in solutions}
    assert {asked["content"]: len(answer["content"]) for asked, answer in trained} == shortest  # solved in this very dream
    store.close()
