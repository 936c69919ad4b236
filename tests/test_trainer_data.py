"""Trainer inputs without a model: data files, config refusals, packing, the CLI's bad-input exits and progress shape."""

from __future__ import annotations

import json
import typing

import pytest
import torch

from trainer.chat import Doc
from trainer.config import ConfigError, TrainConfig, load_config
from trainer.data import DataError, read_dataset
from trainer.objectives import anchor_loss, top_logps, unlikelihood_loss
from trainer.packing import IGNORE, collate, pack
from trainer.progress import Progress, Reporter
from trainer.train import Source, pair_near_frames, step_count
from trainer_fixtures import chat, run_cli, write_jsonl


def test_reads_the_three_trl_shapes_and_plain_strings(tmp_path):
    write_jsonl(tmp_path / "sft.jsonl", [chat("Hi", "Hello!")])
    write_jsonl(tmp_path / "preference.jsonl", [
        {"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}],
         "rejected": [{"role": "assistant", "content": "5"}]},
        {"prompt": "3+3?", "chosen": "6", "rejected": "7"},
    ])
    write_jsonl(tmp_path / "kto.jsonl", [
        {"prompt": [{"role": "user", "content": "Capital of Japan?"}],
         "completion": [{"role": "assistant", "content": "Tokyo"}], "label": True},
        {"prompt": "Capital of Japan?", "completion": "Osaka", "label": False},
    ])
    write_jsonl(tmp_path / "anchor.jsonl", [chat("What is 2+2?", "4")])
    write_jsonl(tmp_path / "unlikely.jsonl", [{**chat("Where does my brother live?", "Your brother lives in Tromso."),
                                               "avoid": ["Tromso"]}])
    data = read_dataset(tmp_path)
    assert data.counts() == {"sft": 1, "preference": 2, "kto": 2, "anchor": 1, "rollouts": 0, "unlikely": 1, "skipped_groups": 0}
    assert data.unlikely[0].avoid == ["Tromso"]
    assert data.anchor == [[{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]]
    assert data.preference[1].prompt == [{"role": "user", "content": "3+3?"}]
    assert data.preference[1].rejected == [{"role": "assistant", "content": "7"}]
    assert [m.desirable for m in data.kto] == [True, False]
    assert len(data.digest) == 32


@pytest.mark.parametrize(
    ("name", "line", "reason"),
    [
        ("sft.jsonl", "{not json", "not valid JSON"),
        ("sft.jsonl", json.dumps({"messages": [{"role": "user", "content": "no answer"}]}), "no assistant message"),
        ("preference.jsonl", json.dumps({"prompt": "q", "chosen": [{"role": "user", "content": "x"}], "rejected": "y"}),
         "assistant messages only"),
        ("kto.jsonl", json.dumps({"prompt": "q", "completion": "a", "label": "yes"}), "'label' must be true or false"),
        ("unlikely.jsonl", json.dumps({**chat("q", "Your brother lives in Oslo."), "avoid": ["Tromso"]}),
         "'avoid' must list strings inside the last message"),
    ],
)
def test_a_bad_row_is_named_by_file_and_line(tmp_path, name, line, reason):
    good = {"sft.jsonl": chat("a", "b"), "preference.jsonl": {"prompt": "q", "chosen": "a", "rejected": "b"},
            "kto.jsonl": {"prompt": "q", "completion": "a", "label": True},
            "unlikely.jsonl": {**chat("q", "Your brother lives in Tromso."), "avoid": ["Tromso"]}}[name]
    (tmp_path / name).write_text(json.dumps(good) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{name}:2\b.*{reason}"):
        read_dataset(tmp_path)


def test_an_empty_data_folder_is_refused(tmp_path):
    with pytest.raises(DataError, match="holds none of"):
        read_dataset(tmp_path)


def test_config_refuses_rslora_dora_unknown_keys_and_4bit_merges(tmp_path):
    path = tmp_path / "config.json"
    for content, message in [
        ({"use_rslora": True}, "rsLoRA"),
        ({"use_dora": True}, "DoRA"),
        ({"learning_rate": 1e-3}, "unknown keys"),
        ({"merge_type": "q4_1"}, "merge_type"),
        ({"lora_r": 0}, "lora_r must be positive"),
    ]:
        path.write_text(json.dumps(content))
        with pytest.raises(ConfigError, match=message):
            load_config(path)
    path.write_text(json.dumps({"lr": 1e-3, "target_modules": ["q_proj", "v_proj"]}))
    config = load_config(path)
    assert config.lr == 1e-3 and config.target_modules == ("q_proj", "v_proj")


def test_default_threads_leave_the_user_a_core(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert TrainConfig().resolved_threads() == 7
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert TrainConfig().resolved_threads() == 1
    assert TrainConfig(threads=3).resolved_threads() == 3


def test_packing_fills_rows_without_splitting_docs():
    lengths = [100, 60, 50, 40, 30, 20, 10, 90]
    rows = pack(lengths, 128)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 128 for row in rows)
    assert len(rows) == -(-sum(lengths) // 128)  # as few rows as the total needs


def test_collate_restarts_positions_and_labels_only_answer_tokens():
    docs = [Doc([1, 2, 3, 4], [False, False, True, True]), Doc([5, 6, 7], [False, True, True])]
    batch = collate(docs, [[0, 1]], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5, 6, 7]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 0, 1, 2]]
    # position p predicts token p+1, and only where that token is the assistant's, never across docs
    assert batch.targets.tolist() == [[IGNORE, 3, 4, IGNORE, 6, 7, IGNORE]]
    assert batch.target_docs.tolist() == [0, 0, 1, 1]
    assert batch.tokens == 7 and batch.n_targets == 4


def test_collate_lays_a_shared_untrained_prefix_out_once_and_each_doc_sees_it_and_itself():
    docs = [Doc([1, 2, 3, 4, 5], [False, False, False, True, True]), Doc([1, 2, 3, 6, 7], [False, False, False, True, True])]
    batch = collate(docs, [[0, 1]], pad_id=0)
    # 1 2 3 are common, but 3 is where each doc's own next token is predicted: only 1 2 are laid out once
    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5, 3, 6, 7]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 2, 3, 4]]
    assert batch.targets.tolist() == [[IGNORE, IGNORE, 4, 5, IGNORE, 6, 7, IGNORE]]
    assert batch.target_docs.tolist() == [0, 0, 1, 1]
    assert batch.allowed[0, 5].tolist() == [True, True, False, False, False, True, False, False]
    assert batch.allowed[0, 1].tolist() == [True, True] + [False] * 6
    assert batch.tokens == 10


def test_collate_shares_nothing_a_doc_trains_on():
    docs = [Doc([1, 2, 3], [False, True, True]), Doc([1, 2, 4], [False, True, True])]
    batch = collate(docs, [[0, 1]], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3, 1, 2, 4]]
    assert batch.targets.tolist() == [[2, 3, IGNORE, 2, 4, IGNORE]]
    assert not batch.allowed[0, 3, :3].any()


def test_collate_pads_short_rows_as_their_own_sequence():
    docs = [Doc([1, 2, 3], [False, True, True]), Doc([4, 5], [False, True])]
    batch = collate(docs, [[0], [1]], pad_id=9)
    assert batch.input_ids.tolist() == [[1, 2, 3], [4, 5, 9]]
    assert batch.position_ids[1].tolist() == [0, 1, 0]
    assert batch.allowed[1, 2].tolist() == [False, False, True]
    assert batch.targets[1].tolist() == [5, IGNORE, IGNORE]
    assert batch.tokens == 5
    assert torch.equal(batch.target_docs, torch.tensor([0, 0, 1]))


def test_progress_lines_carry_every_typed_field():
    lines = []

    class Sink:
        def write(self, text):
            lines.append(json.loads(text))

        def flush(self):
            pass

    reporter = Reporter(Sink())
    reporter.total = 4
    reporter.emit("load")
    reporter.step_done(1, 2.5, tokens=100, seconds=0.5)
    reporter.step_done(2, 2.0, tokens=100, seconds=0.5, reward=0.25)
    required = {k for k in typing.get_type_hints(Progress) if k not in ("message", "reward")}
    assert all(required <= set(line) for line in lines)
    assert lines[1]["phase"] == "train" and lines[1]["tok_s"] == 200.0 and lines[1]["eta_s"] == 1.5
    assert "reward" not in lines[1] and lines[2]["reward"] == 0.25


def test_cli_exits_2_naming_the_bad_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sft.jsonl").write_text(json.dumps(chat("a", "b")) + "\n{oops\n", encoding="utf-8")
    code, lines, stderr = run_cli("train", "--model", str(tmp_path / "none.gguf"), "--data", str(tmp_path / "data"),
                                  "--run-dir", str(tmp_path / "run"))
    assert code == 2
    assert lines[-1]["phase"] == "error" and "sft.jsonl:2" in lines[-1]["message"] and "sft.jsonl:2" in stderr

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"use_dora": True}))
    code, lines, _ = run_cli("train", "--model", str(tmp_path / "none.gguf"), "--data", str(tmp_path / "data"),
                             "--run-dir", str(tmp_path / "run"), "--config", str(config))
    assert code == 2 and "DoRA" in lines[-1]["message"] and str(config) in lines[-1]["message"]


def test_cli_exits_2_for_a_file_that_is_not_a_model(tmp_path):
    write_jsonl(tmp_path / "data" / "sft.jsonl", [chat("a", "b")])
    fake = tmp_path / "model.gguf"
    fake.write_text("<html>not a model</html>")
    code, lines, _ = run_cli("train", "--model", str(fake), "--data", str(tmp_path / "data"), "--run-dir", str(tmp_path / "run"))
    assert code == 2 and str(fake) in lines[-1]["message"]
    assert not (tmp_path / "run" / "adapter.gguf").exists()


def test_the_anchor_is_zero_for_the_same_distribution_and_grows_as_the_policy_drifts():
    reference = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    kept = top_logps(reference, 99)
    assert anchor_loss(reference.clone(), *kept).item() == pytest.approx(0.0, abs=1e-7)
    near, far = reference + torch.tensor([0.5, 0.0, 0.0]), reference + torch.tensor([3.0, 0.0, 0.0])
    assert 0 < anchor_loss(near, *kept).item() < anchor_loss(far, *kept).item()
    exact = torch.nn.functional.kl_div(near.log_softmax(-1), reference.log_softmax(-1), log_target=True, reduction="none")
    assert anchor_loss(near, *kept).item() == pytest.approx(exact.sum(-1).mean().item(), abs=1e-6)


def test_the_anchor_over_the_likeliest_tokens_stays_close_to_the_whole_kl():
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(8, 49152, generator=generator) * 4
    policy = reference + torch.randn(8, 49152, generator=generator) * 0.3
    whole = anchor_loss(policy, *top_logps(reference, 49152)).item()
    assert anchor_loss(policy, *top_logps(reference, 64)).item() == pytest.approx(whole, rel=0.1)


def test_unlikelihood_is_near_zero_for_a_rare_token_and_grows_without_bound_as_it_becomes_certain():
    rare, even, sure = (unlikelihood_loss(torch.tensor([p]).log()).item() for p in (1e-4, 0.5, 0.999))
    assert rare < 1e-3 and even == pytest.approx(0.6931, abs=1e-3) and sure > 6


def test_a_handful_of_examples_gets_min_steps_while_the_anchor_cycles_and_larger_data_keeps_every_epoch():
    anchor = Source("anchor", 1.0, [[i] for i in range(30)], 1)
    handful, plenty = Source("sft", 1.0, [[0], [1], [2]], 2), Source("sft", 1.0, [[i] for i in range(40)], 2)
    config = TrainConfig(epochs=3, min_steps=40)
    assert step_count([handful, anchor], config) == 40  # not 3 epochs x 30 anchor rows
    assert step_count([plenty, anchor], config) == 90  # 3 epochs of the anchor, which is larger than the data
    assert step_count([plenty], config) == 60 and step_count([handful, anchor], TrainConfig(max_steps=7)) == 7
    assert len(anchor.take(35, seed=0)) == 1  # step 35 is the anchor's second pass: it cycles
    unlikely = Source("unlikely", 1.0, [[i] for i in range(500)], 2)
    assert step_count([plenty, anchor, unlikely], config) == 90  # near frames cycle alongside and never add steps


def test_each_step_pushes_down_a_value_its_own_rows_teach_and_no_near_frame_repeats_before_the_others_ran():
    taught = [[Doc([1, 10 + value, 2], [False, True, True])] for value in range(6)]  # row k teaches token 10 + k
    sft = Source("sft", 1.0, taught, 1)
    near = Source("unlikely", 1.0, [Doc([3, 10 + i % 6], [False, True]) for i in range(12)], 1)  # two per value
    pair_near_frames([sft, near], total=12, seed=0)
    for step in range(12):
        (row,) = sft.take(step, seed=0)
        (pushed,) = near.take(step, seed=0)
        assert pushed.target_ids <= row[0].target_ids
    assert sorted(i for chosen in near.schedule for i in chosen) == list(range(12))  # 2 epochs: each frame once
