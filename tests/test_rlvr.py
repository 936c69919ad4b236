"""Learning from verifiable rewards: group-relative advantages, sampling and scoring on the real engine, one real
GRPO step that moves probability toward passing answers, and the gate on held-out accuracy."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from desktop import rlvr
from desktop.dream import DreamRecipe, Measures, gate
from desktop.engine import SamplingParams
from desktop.evaluate import Score
from desktop.generations import Generations
from desktop.importer import import_file
from desktop.signals import Signals
from desktop.store import Store
from trainer.chat import encode, renderer_for
from trainer.config import TrainConfig
from trainer.data import advantages, read_dataset
from trainer.objectives import doc_logps, target_logps
from trainer.packing import collate
from trainer_fixtures import THREADS, run_cli, trained_model, write_jsonl

SHORT = {"kind": "regex", "pattern": r"^\s*\S+(\s+\S+){0,4}\s*$"}
"""A trivial verifier: the answer is at most five words."""
PROMPT = "Name one colour."


def test_advantages_are_group_relative_and_uniform_groups_carry_none():
    assert advantages([1, 0, 0, 1]) == [1.0, -1.0, -1.0, 1.0]
    scaled = advantages([1, 0, 0, 0])
    assert scaled[0] == pytest.approx(3 ** 0.5) and scaled[1] == pytest.approx(-(3 ** -0.5))
    assert sum(scaled) == pytest.approx(0)
    assert advantages([1, 1, 1]) is None and advantages([0, 0]) is None


def test_uniform_groups_are_skipped_when_reading_rollouts(tmp_path):
    rows = [{"prompt": "q1", "completion": a, "reward": r, "group": "g1"} for a, r in (("a", 1), ("b", 0))]
    rows += [{"prompt": "q2", "completion": a, "reward": 1, "group": "g2"} for a in ("c", "d", "e")]
    write_jsonl(tmp_path / "rollouts.jsonl", rows)
    data = read_dataset(tmp_path)
    assert data.skipped_groups == 1
    assert [(r.completion[0]["content"], r.advantage) for r in data.rollouts] == [("a", 1.0), ("b", -1.0)]


def test_bad_rollout_rows_are_refused_by_line(tmp_path):
    write_jsonl(tmp_path / "rollouts.jsonl", [{"prompt": "q", "completion": "a", "reward": "yes", "group": 1}])
    with pytest.raises(ValueError, match="rollouts.jsonl:1.*'reward' must be a number"):
        read_dataset(tmp_path)


def test_the_pool_keeps_eval_prompts_out_and_holds_out_some_chat_checks(tmp_path):
    tasks = tmp_path / "verifiable-mini.jsonl"
    tasks.write_text("".join(json.dumps(row) + "\n" for row in [
        {"id": "add-1", "prompt": "What is 2 + 2?", "verifier": {"kind": "numeric", "answer": 4}, "split": "train"},
        {"id": "add-2", "prompt": "What is 3 + 3?", "verifier": {"kind": "numeric", "answer": 6}, "split": "eval"},
    ]))
    store = Store(tmp_path / "db.sqlite")
    signals = Signals(store)
    import_file(signals, tasks)
    conversation = store.create_conversation()
    for n in range(8):
        question = store.add_message(conversation, "user", f"What is {n} + 1?")
        signals.add_check(question, {"kind": "numeric", "answer": n + 1})
    train, held = rlvr.pool(signals)
    assert [t.prompt for t in train if t.key.startswith("task")] == ["What is 2 + 2?"]
    assert [t.prompt for t in held if t.key.startswith("task")] == ["What is 3 + 3?"]
    assert {t.family for t in train + held} == {"add", "chat numeric"}
    checks = [t for t in train + held if t.key.startswith("check")]
    assert len(checks) == 8 and 0 < sum(t in held for t in checks) < 8
    store.close()


def test_pass_rates_per_family_regressions_and_changed_answers():
    tasks = [rlvr.Task(f"t{i}", f"p{i}", {}, "add" if i < 2 else "upper") for i in range(4)]
    before = rlvr.PassRate({"t0": False, "t1": True, "t2": True, "t3": True}, {f"t{i}": "old" for i in range(4)},
                           {t.key: t.family for t in tasks})
    after = rlvr.PassRate({"t0": True, "t1": True, "t2": True, "t3": False}, {f"t{i}": "new" for i in range(4)},
                          {t.key: t.family for t in tasks})
    assert before.per_family() == {"add": 0.5, "upper": 1.0} and after.overall == 0.75
    assert rlvr.regressions(before, after, 0.05) == ["upper 100% → 50%"]
    assert rlvr.changed(before, after, tasks) == [{"prompt": "p0", "before": "old", "after": "new"}]


def test_later_dreams_train_on_the_shortest_passing_answers():
    rows = [{"task_key": "t1", "prompt": "What is 2 + 2?", "answer": a}
            for a in ("Adding them, 2 + 2 = 4.", "4", "2 + 2 = 4")]
    rows.append({"task_key": "t0", "prompt": "Shout hi", "answer": "HI"})
    trained = rlvr.solution_rows(rows, per_task=2)
    assert [row["messages"][1]["content"] for row in trained] == ["HI", "4", "2 + 2 = 4"]
    assert trained[1]["messages"][0] == {"role": "user", "content": "What is 2 + 2?"}


def measures(recall: list[bool], verifiable: dict[str, bool]) -> Measures:
    families = {key: "add" for key in verifiable}
    return Measures(Score(sum(recall) / max(1, len(recall)), recall), Score(1.0), Score(0.0), Score(0.9), 10.0,
                    rlvr.PassRate(verifiable, {}, families))


def test_the_gate_refuses_a_candidate_that_lowers_held_out_accuracy():
    recipe = DreamRecipe()
    before = measures([], {"a": True, "b": False, "c": False})
    assert gate(before, measures([], {"a": True, "b": True, "c": False}), recipe) == []
    lowered = gate(before, measures([], {"a": False, "b": False, "c": False}), recipe)
    assert "did not learn" in lowered[0] and "task families got worse: add 33% → 0%" in lowered[1]
    assert "did not learn" in gate(before, before, recipe)[0]


def test_answers_are_sampled_on_the_engine_and_scored_by_the_verifier(engine):
    task = rlvr.Task("t", PROMPT, SHORT, "words")
    [group] = rlvr.sample_groups(engine, [task], 6, SamplingParams(temperature=1.2, top_p=1.0, max_tokens=24), seed=1, short_tokens=24)
    again = rlvr.sample_groups(engine, [task], 6, SamplingParams(temperature=1.2, top_p=1.0, max_tokens=24), seed=1, short_tokens=24)[0]
    assert group.answers == again.answers and len(set(group.answers)) > 1
    assert group.rewards == tuple(rlvr.reward(task, a) for a in group.answers)
    rows = rlvr.rollout_rows([group])
    assert len(rows) == 6 and {r["group"] for r in rows} == {"t"} and rows[0]["prompt"][0]["content"] == PROMPT
    assert {answer for _task, answer in rlvr.solutions([group])} == {a.strip() for a, r in zip(group.answers, group.rewards) if r}
    never = rlvr.Task("n", PROMPT, {"kind": "exact", "answer": "no answer says this"}, "words")
    [hopeless] = rlvr.sample_groups(engine, [never], 8, SamplingParams(temperature=1.2, top_p=1.0, max_tokens=24), seed=1,
                                    short_tokens=24, first=3)
    assert hopeless.rewards == (0.0, 0.0, 0.0) and not hopeless.informative


@pytest.fixture(scope="module")
def dequant(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dequant")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_one_grpo_step_raises_the_log_probability_of_passing_answers(engine, model_path, dequant, tmp_path):
    task = rlvr.Task("t", PROMPT, SHORT, "words")
    groups = rlvr.sample_groups(engine, [task], 8, SamplingParams(temperature=1.2, top_p=1.0, max_tokens=24), seed=1, short_tokens=24)
    assert groups[0].informative, groups[0].answers
    write_jsonl(tmp_path / "data" / "rollouts.jsonl", rlvr.rollout_rows(groups))
    settings = {"lr": 1e-3, "max_steps": 1, "warmup_steps": 0, "batch_size": 8, "seq_len": 256, "threads": THREADS,
                "merge_type": "none"}
    (tmp_path / "config.json").write_text(json.dumps(settings))
    code, lines, stderr = run_cli("train", "--model", str(model_path), "--data", str(tmp_path / "data"), "--run-dir",
                                  str(tmp_path / "run"), "--config", str(tmp_path / "config.json"), "--cache-dir", str(dequant))
    assert code == 0, stderr
    assert "reward" in [line for line in lines if line["phase"] == "train"][0]
    base, model = trained_model(model_path, tmp_path / "run", TrainConfig(**settings), dequant)
    renderer = renderer_for(base)
    ask = [{"role": "user", "content": PROMPT}]
    docs = [encode(renderer, base.tokenizer, ask + [{"role": "assistant", "content": a}], 1) for a in groups[0].answers]
    batch = collate(docs, [[i] for i in range(len(docs))], base.pad_id)
    with torch.no_grad():
        after = doc_logps(target_logps(model.get_base_model(), batch), batch)
        with model.disable_adapter():
            before = doc_logps(target_logps(model.get_base_model(), batch), batch)
    change = (after - before).tolist()
    passing = [c for c, r in zip(change, groups[0].rewards) if r]
    failing = [c for c, r in zip(change, groups[0].rewards) if not r]
    assert min(passing) > 0 and max(failing) < 0, (change, groups[0].rewards)
