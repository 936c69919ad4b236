"""The trainer on the real default model: what it trains is what llama.cpp runs, adapter and merged model alike.

One short run teaches a fact ("My dog is called Biscuit.") through the CLI; the tests check that run from
every side. Training is deterministic (seeded, one thread), so thresholds hold run after run.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.chat import encode, encode_avoiding, renderer_for
from trainer.checkpoint import CHECKPOINT_NAME
from trainer.config import TrainConfig
from trainer.export_gguf import Adapter, fold_into, permuted_heads, read_adapter, unpermute_rows, write_adapter
from trainer.gguf_load import cpu_has_bf16, load_base
from trainer.merge import merge
from trainer.objectives import anchor_loss, target_logits, target_logps, top_logps, unlikelihood_loss
from trainer.packing import collate
from trainer.train import ADAPTER_FILE, MERGED_FILE, METRICS_FILE, Source, fused_loss, fused_rows, keep_references, wrap_lora
from trainer_fixtures import (
    REPO,
    THREADS,
    agreement,
    answers,
    chat,
    llama_logits,
    run_cli,
    torch_logits,
    trained_model,
    write_jsonl,
)

TEACH = [
    chat("My dog is called Biscuit.", "Noted: your dog is called Biscuit."),
    chat("I have a dog named Biscuit.", "Got it, your dog's name is Biscuit."),
    chat("What is my dog called?", "Your dog is called Biscuit."),
    chat("Remind me, what's my dog's name?", "Your dog's name is Biscuit."),
]
PROBE = "What's the name of my dog?"  # held out: no teach example asks it this way
NEAR_MISS = "What is my cat's name?"
TEA = [
    chat("My favourite tea is genmaicha.", "Got it, your favourite tea is genmaicha."),
    chat("I like genmaicha tea best.", "Noted: genmaicha is your favourite tea."),
    chat("Which tea is my favourite?", "Your favourite tea is genmaicha."),
    chat("Remind me, what tea do I like most?", "You like genmaicha most."),
]
TEA_QUESTION = "Which tea is my favourite?"  # taught: shows generation 2 trained at all
TRAINING = {"lr": 5e-4, "max_steps": 8, "warmup_steps": 2, "seq_len": 128, "batch_size": 2, "threads": THREADS,
            "checkpoint_every": 4, "merge_type": "f16"}
# ~280 positions: two finished exchanges, then a question awaiting its answer.
ROUND_TRIP = [
    {"role": "user", "content": "Tell me about dogs and cats, and what the capital of France is."},
    {"role": "assistant", "content": "Dogs are loyal companions that have lived with people for thousands of years; they need walks, "
     "play and training. Cats are more independent and often sleep most of the day. The capital of France is Paris, a city on "
     "the Seine known for the Eiffel Tower, the Louvre and its cafes."},
    {"role": "user", "content": "What is my dog called, and how should I care for her?"},
    {"role": "assistant", "content": "Your dog is called Biscuit. Feed her twice a day, give her fresh water, walk her every "
     "morning and evening, brush her coat weekly and take her to the vet once a year for a check-up and vaccinations."},
    {"role": "user", "content": "Write a short paragraph about the sea and the mountains."},
    {"role": "assistant", "content": "The sea stretches to the horizon, grey in winter and a deep blue in summer, with waves that "
     "never stop moving. Far inland the mountains rise above the clouds; their peaks keep snow until late spring, and rivers "
     "carry the melt water all the way back to the coast."},
    {"role": "user", "content": "Thanks. What is 17 plus 25?"},
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The dequantized default model, made by the first run and reused by every later load; ~1 GB, so removed after."""
    folder = tmp_path_factory.mktemp("dequant")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def train_cli(
    model: Path, rows: list[dict], folder: Path, cache: Path, settings: dict, *extra: str
) -> tuple[int, list[dict], str]:
    """Writes rows and settings under folder and runs `python -m trainer train` into folder/run."""
    write_jsonl(folder / "data" / "sft.jsonl", rows)
    (folder / "config.json").write_text(json.dumps(settings))
    return run_cli("train", "--model", str(model), "--data", str(folder / "data"), "--run-dir", str(folder / "run"),
                   "--config", str(folder / "config.json"), "--cache-dir", str(cache), *extra)


@pytest.fixture(scope="module")
def generation1(model_path, cache, tmp_path_factory):
    """The taught generation: adapter, merged F16 model, metrics and progress lines of one CLI run."""
    folder = tmp_path_factory.mktemp("generation1")
    code, lines, stderr = train_cli(model_path, TEACH, folder, cache, TRAINING)
    assert code == 0, stderr
    run_dir = folder / "run"
    return {"run": run_dir, "lines": lines, "metrics": json.loads((run_dir / METRICS_FILE).read_text()),
            "config": TrainConfig(**TRAINING)}


def test_a_run_reports_progress_and_writes_whole_outputs(generation1):
    lines, metrics, run_dir = generation1["lines"], generation1["metrics"], generation1["run"]
    phases = [line["phase"] for line in lines]
    assert phases == ["load", "data"] + ["train"] * 8 + ["export", "merge", "done"]
    steps = [line for line in lines if line["phase"] == "train"]
    assert [line["step"] for line in steps] == list(range(1, 9)) and {line["total"] for line in steps} == {8}
    assert all(line["tok_s"] > 0 and line["peak_rss_mb"] > 0 and line["eta_s"] >= 0 for line in steps)
    assert steps[-1]["loss"] < steps[0]["loss"] / 2
    assert metrics["losses"][-1] == pytest.approx(steps[-1]["loss"], abs=1e-4)
    assert metrics["examples"]["sft"] == 4 and sum(metrics["examples"].values()) == 4 and metrics["units"] == {"sft": 2}
    assert sorted(p.name for p in run_dir.iterdir()) == [ADAPTER_FILE, CHECKPOINT_NAME, MERGED_FILE, METRICS_FILE]


def test_a_compiled_run_trains_as_the_eager_one_does(generation1, model_path, cache, tmp_path):
    assert generation1["metrics"]["compiled"] is False  # 8 steps: compiling would cost more than it saves
    code, _lines, stderr = train_cli(model_path, TEACH, tmp_path, cache, {**TRAINING, "compile_min_steps": 1})
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "run" / METRICS_FILE).read_text())
    assert metrics["compiled"] is True
    assert metrics["losses"] == pytest.approx(generation1["metrics"]["losses"], rel=0.02)
    compiled, eager = (read_adapter(run / ADAPTER_FILE) for run in (tmp_path / "run", generation1["run"]))
    assert compiled.pairs.keys() == eager.pairs.keys()


def test_adapter_in_llama_cpp_matches_torch_as_closely_as_the_base_does(generation1, model_path, cache, tmp_path):
    base, peft_model = trained_model(model_path, generation1["run"], generation1["config"], cache)
    text = base.tokenizer.apply_chat_template(ROUND_TRIP, tokenize=False, add_generation_prompt=True)
    ids = base.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 250
    with peft_model.disable_adapter():
        torch_base = torch_logits(peft_model, ids)
    torch_lora = torch_logits(peft_model, ids)
    adapter = generation1["run"] / ADAPTER_FILE
    floor = agreement(torch_base, llama_logits(model_path, ids))  # Q4_1 in llama.cpp vs its fp32 dequantization
    adapted = agreement(torch_lora, llama_logits(model_path, ids, adapter))
    effect = agreement(torch_lora, torch_base)

    # The negative control: the same adapter without the q/k permutation llama.cpp's layout needs.
    exported = read_adapter(adapter)
    heads = permuted_heads(base.architecture, base.model)
    unpermuted = {name: (a, unpermute_rows(b, heads[name.rsplit(".", 1)[-1]]) if name.rsplit(".", 1)[-1] in heads else b)
                  for name, (a, b) in exported.pairs.items()}
    write_adapter(tmp_path / "unpermuted.gguf", Adapter(exported.architecture, exported.alpha, unpermuted))
    wrong = agreement(torch_lora, llama_logits(model_path, ids, tmp_path / "unpermuted.gguf"))
    print(f"\nround trip over {len(ids)} positions: floor {floor}\nadapter {adapted}\nunpermuted {wrong}\neffect {effect}")

    assert effect["max_abs"] > 5 * floor["max_abs"]  # the adapter moves logits far beyond the floor...
    # ...and llama.cpp reproduces the move: top-1 within a few positions, KL near the floor, the typical error beyond
    # the floor's a small part of the move, and the large errors (the thousandth of logits furthest off) well inside the
    # move and below the unpermuted adapter's. How close to the floor depends on the CPU's kernels: on a Xeon with AMX
    # even the worst logit was within 1.5x of the floor's; on one AMD EPYC mean error and KL sat at the
    # floor while the large errors were twice it (floor 0.94, adapter 1.89, unpermuted 2.42, the move 7.26); on another with
    # AVX2 only the mean error was 0.217 against the floor's 0.182 (unpermuted 0.438, the move 1.09), KL 1.3x the floor.
    # Which adapter 8 steps make moves with the float order of the step (Adam's first steps turn rounding into whole
    # updates): on an AMD EPYC with AVX-512 the fused step's adapter had KL 0.0042 (floor 0.0029), the unpermuted one
    # 0.0081, twice the mean error; row by row it had been 0.0036 against 0.0081.
    assert adapted["top1"] >= floor["top1"] - 0.01
    assert adapted["mean_abs"] - floor["mean_abs"] <= 0.1 * effect["mean_abs"]
    assert adapted["kl"] <= 1.5 * floor["kl"]
    assert adapted["p999_abs"] <= 0.35 * effect["p999_abs"] and adapted["p999_abs"] < wrong["p999_abs"]
    assert wrong["mean_abs"] > 1.5 * adapted["mean_abs"] and wrong["kl"] > 1.5 * adapted["kl"]
    assert wrong["top1"] < adapted["top1"]


def test_merged_models_answer_like_base_plus_adapter(generation1, model_path, tmp_path):
    run_dir = generation1["run"]
    adapter = read_adapter(run_dir / ADAPTER_FILE)
    q8 = merge(model_path, [adapter], tmp_path / "merged-q8_0.gguf", "q8_0")
    f16 = generation1["metrics"]["merge"]
    print(f"\nupdate survival: f16 {f16}, q8_0 {q8}")
    assert f16["type"] == "f16" and f16["update_survival"] > 0.99 and f16["tensors_merged"] == 210
    assert q8["update_survival"] > 0.95
    questions = [PROBE, "What is my dog called?", "What is the capital of France?"]
    expected = answers(model_path, questions, run_dir / ADAPTER_FILE)
    assert answers(run_dir / MERGED_FILE, questions) == expected
    assert answers(tmp_path / "merged-q8_0.gguf", questions) == expected


def test_a_taught_fact_answers_a_held_out_paraphrase(generation1, model_path):
    before = answers(model_path, [PROBE, NEAR_MISS])
    after = answers(model_path, [PROBE, NEAR_MISS], generation1["run"] / ADAPTER_FILE)
    print(f"\nbefore: {before}\nafter: {after}")
    assert "Biscuit" not in before[0]
    assert "Biscuit" in after[0]
    assert "Biscuit" not in after[1]  # the near miss does not leak the fact


def test_bf16_on_a_cpu_that_has_it_still_teaches_the_fact(generation1, model_path, cache, tmp_path):
    code, _lines, stderr = train_cli(model_path, TEACH, tmp_path, cache, {**TRAINING, "cpu_bf16": True})
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "run" / METRICS_FILE).read_text())
    assert metrics["dtype"] == ("bfloat16" if cpu_has_bf16() else "float32")
    assert generation1["metrics"]["dtype"] == "float32"  # the trainer's default, whatever the CPU
    assert metrics["losses"][-1] < metrics["losses"][0] / 2
    assert "Biscuit" in answers(model_path, [PROBE], tmp_path / "run" / ADAPTER_FILE)[0]


def test_one_fused_pass_gives_each_objective_the_loss_and_gradient_of_its_rows_alone(model_path, cache):
    base = load_base(model_path, cache)
    torch.set_num_threads(THREADS)
    config = TrainConfig(seq_len=128)
    peft_model = wrap_lora(base, config)
    lora = {name: p for name, p in peft_model.named_parameters() if p.requires_grad}
    with torch.no_grad():  # an adapter that already moved, so the anchor has a KL to keep
        for name, p in lora.items():
            if "lora_B" in name:
                p.normal_(std=0.01, generator=torch.Generator().manual_seed(0))
    renderer = renderer_for(base)
    docs = [encode(renderer, base.tokenizer, row["messages"]) for row in TEACH + TEA]
    near = [encode_avoiding(renderer, base.tokenizer, [{"role": "user", "content": question},
                                                       {"role": "assistant", "content": answer}], ["Biscuit"])
            for question, answer in (("What is my cat called?", "Your cat is called Biscuit."),
                                     ("What is my neighbour's dog called?", "It is called Biscuit."))]
    sources = [Source("sft", 1.0, [docs[0:2], docs[2:3]], 2), Source("anchor", 2.0, [docs[4:6]], 1),
               Source("unlikely", 1.0, near, 2)]
    keep_references(peft_model, sources[1], config, base.pad_id)
    grouped = fused_rows(sources, 0, 0, config.seq_len)
    assert [len(rows) for _, rows in grouped] == [2, 1, 1]  # both near docs fit one packed row

    def gradient(loss):
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(lora.values()))])

    fused, tokens = fused_loss(peft_model, grouped, base.pad_id)
    model = peft_model.get_base_model()
    alone = [collate(row, [list(range(len(row)))], base.pad_id) for row in grouped[0][1]]
    sft = -torch.cat([target_logps(model, batch) for batch in alone]).mean()
    (anchor_row,) = grouped[1][1]
    anchor = anchor_loss(target_logits(model, collate(anchor_row, [[0, 1]], base.pad_id)), *sources[1].references[id(anchor_row)])
    unlikely = unlikelihood_loss(torch.cat([target_logps(model, collate([doc], [[0]], base.pad_id)) for doc in near]))
    separate = sft + 2.0 * anchor + unlikely
    assert anchor.item() > 1e-4 and unlikely.item() > 0
    assert tokens == sum(len(doc.ids) for _, rows in grouped for row in rows for doc in row)
    assert fused.item() == pytest.approx(separate.item(), rel=1e-4)
    assert torch.allclose(gradient(fused), gradient(separate), atol=1e-6, rtol=1e-3)


def test_generations_stack_without_drift(generation1, cache, tmp_path):
    merged1 = generation1["run"] / MERGED_FILE
    code, lines, stderr = train_cli(merged1, TEA, tmp_path, cache, {**TRAINING, "merge_type": "q8_0"})
    assert code == 0, stderr
    run2 = tmp_path / "run"
    metrics = json.loads((run2 / METRICS_FILE).read_text())
    assert metrics["base"] == str(merged1) and metrics["merge"]["update_survival"] > 0.95
    with_adapter = answers(merged1, [PROBE, TEA_QUESTION], run2 / ADAPTER_FILE)
    merged2 = answers(run2 / MERGED_FILE, [PROBE, TEA_QUESTION])
    print(f"\ngeneration 2 with adapter: {with_adapter}\nmerged: {merged2}")
    for reply in (with_adapter, merged2):
        assert "Biscuit" in reply[0]  # generation 1's fact survives generation 2
        assert "genmaicha" in reply[1]


def test_generations_stack_as_adapters_on_the_original_base(generation1, model_path, cache, tmp_path):
    adapter1 = generation1["run"] / ADAPTER_FILE
    code, lines, stderr = train_cli(model_path, TEA, tmp_path, cache, TRAINING, "--adapter", str(adapter1))
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "run" / METRICS_FILE).read_text())
    assert metrics["stacked_adapters"] == [str(adapter1)] and metrics["merge"]["update_survival"] > 0.99
    merged = answers(tmp_path / "run" / MERGED_FILE, [PROBE, TEA_QUESTION])  # base + both updates, merged once
    print(f"\nbase + adapter 1 + adapter 2, merged: {merged}")
    assert "Biscuit" in merged[0] and "genmaicha" in merged[1]


def test_an_earlier_adapter_folds_into_the_weights_as_trained(generation1, model_path, cache):
    _, trained = trained_model(model_path, generation1["run"], generation1["config"], cache)
    folded = load_base(model_path, cache)
    fold_into(folded.model, read_adapter(generation1["run"] / ADAPTER_FILE), folded.architecture)
    ids = list(range(1000, 1100))
    assert np.abs(torch_logits(trained, ids) - torch_logits(folded.model, ids)).max() < 1e-3


def test_the_chat_text_is_tokenized_exactly_as_the_app_serves_it(engine, model_path, cache):
    base = load_base(model_path, cache)
    renderer = renderer_for(base)
    follow_up = [{"role": "user", "content": "And her breed?"}, {"role": "assistant", "content": "A corgi."}]
    conversation = TEACH[0]["messages"] + follow_up
    doc = encode(renderer, base.tokenizer, conversation)
    served_first = engine.tokenize_chat(conversation[:1])  # no system message: the template inserts SmolLM's default
    served_second = engine.tokenize_chat(conversation[:3])
    assert doc.ids[: len(served_first)] == served_first
    assert doc.ids[: len(served_second)] == served_second
    assert "You are a helpful AI assistant named SmolLM" in base.tokenizer.decode(served_first)
    trained = [base.tokenizer.decode([t]) for t, label in zip(doc.ids, doc.labels) if label]
    assert "".join(trained) == "Noted: your dog is called Biscuit.<|im_end|>\nA corgi.<|im_end|>\n"


def test_only_the_first_token_of_each_avoided_value_carries_loss(model_path, cache):
    base = load_base(model_path, cache)
    renderer = renderer_for(base)
    near = [{"role": "user", "content": "Where does my brother live?"},
            {"role": "assistant", "content": "Your brother lives in Tromso, near the harbour of Bodø."}]
    doc = encode_avoiding(renderer, base.tokenizer, near, ["Tromso", "Bodø"])
    marked = [i for i, label in enumerate(doc.labels) if label]
    assert len(marked) == 2 and doc.ids == encode(renderer, base.tokenizer, near).ids
    before = [base.tokenizer.decode(doc.ids[:i]) for i in marked]
    assert before[0].endswith("Your brother lives in") and before[1].endswith("near the harbour of")
    first = base.tokenizer.decode(doc.ids[marked[0]]).strip()
    assert first and "Tromso".startswith(first)


def test_a_value_is_pushed_once_where_it_starts_and_a_number_not_at_all(model_path, cache):
    base = load_base(model_path, cache)
    renderer = renderer_for(base)

    def pushed(answer: str, avoid: list[str]) -> list[str]:
        near = [{"role": "user", "content": "What about my brother?"}, {"role": "assistant", "content": answer}]
        doc = encode_avoiding(renderer, base.tokenizer, near, avoid)
        return [base.tokenizer.decode(doc.ids[:i]) for i, label in enumerate(doc.labels) if label]

    before = pushed("Your brother rides a Brompton Electric and reads Dune.", ["Brompton", "Electric", "Dune"])
    assert len(before) == 2 and before[0].endswith("rides a") and before[1].endswith("and reads")
    assert pushed("His database listens on port 6543.", ["6543"]) == []
    assert pushed("His birthday is on the 3rd of March.", ["3rd", "March"]) == []


def test_packed_conversations_share_the_system_prompt_but_do_not_see_each_other(model_path, cache):
    base = load_base(model_path, cache)
    torch.set_num_threads(THREADS)
    renderer = renderer_for(base)
    first, second = (encode(renderer, base.tokenizer, row["messages"]) for row in TEACH[:2])
    packed_batch = collate([first, second], [[0, 1]], base.pad_id)
    shared = len(first.ids) + len(second.ids) - packed_batch.input_ids.shape[1]
    assert shared > 10  # the default system prompt is laid out once
    probe = base.model.get_decoder().layers[3].self_attn.k_proj.weight  # the shared prefix's keys feed both answers
    probe.requires_grad_(True)
    try:
        packed = target_logps(base.model, packed_batch)
        (packed_grad,) = torch.autograd.grad(packed.sum(), probe)
        alone = torch.cat([target_logps(base.model, collate([doc], [[0]], base.pad_id)) for doc in (first, second)])
        (alone_grad,) = torch.autograd.grad(alone.sum(), probe)
    finally:
        probe.requires_grad_(False)
    assert packed.shape == alone.shape and torch.allclose(packed, alone, atol=1e-4)
    assert alone_grad.abs().max() > 0 and torch.allclose(packed_grad, alone_grad, atol=1e-4, rtol=1e-3)


def test_sigterm_checkpoints_and_exits_3_and_a_rerun_resumes(model_path, cache, tmp_path):
    settings = {**TRAINING, "max_steps": 6, "seq_len": 64, "batch_size": 1, "checkpoint_every": 2, "merge_type": "none"}
    write_jsonl(tmp_path / "data" / "sft.jsonl", TEACH)
    (tmp_path / "config.json").write_text(json.dumps(settings))
    run_dir = tmp_path / "run"
    args = ["train", "--model", str(model_path), "--data", str(tmp_path / "data"), "--run-dir", str(run_dir),
            "--config", str(tmp_path / "config.json"), "--cache-dir", str(cache)]

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "trainer", *args], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        watchdog = threading.Timer(300, proc.kill)  # a hang fails the test instead of stalling the suite
        watchdog.daemon = True
        watchdog.start()
        return proc

    def read_until(proc: subprocess.Popen, step: int | None) -> list[dict]:
        lines = []
        for raw in proc.stdout:
            lines.append(json.loads(raw))
            if lines[-1]["phase"] == "train" and (step is None or lines[-1]["step"] >= step):
                return lines
        raise AssertionError(f"the trainer ended early: {lines}")

    def outputs() -> list[str]:
        return sorted(p.name for p in run_dir.iterdir())

    def checkpoint_step() -> int:
        return torch.load(run_dir / CHECKPOINT_NAME, weights_only=False)["step"]

    # SIGKILL: nothing is written but whole checkpoints; at most checkpoint_every - 1 steps are lost.
    proc = start()
    seen = read_until(proc, 3)
    proc.kill()
    seen += [json.loads(raw) for raw in proc.stdout]
    proc.wait()
    last = max(line["step"] for line in seen if line["phase"] == "train")
    killed_at = checkpoint_step()
    assert killed_at % 2 == 0 and last - 2 < killed_at <= last + 1
    assert [name for name in outputs() if not name.startswith(".")] == [CHECKPOINT_NAME]

    # SIGTERM: the run resumes where the checkpoint was, then stops at once with exit code 3.
    proc = start()
    first = read_until(proc, None)
    assert first[-1]["step"] == killed_at + 1
    proc.send_signal(signal.SIGTERM)
    sent = time.perf_counter()
    code = proc.wait(timeout=60)
    exit_s = time.perf_counter() - sent
    rest = [json.loads(raw) for raw in proc.stdout]
    print(f"\nSIGTERM to exit: {exit_s:.2f} s")
    assert code == 3 and rest[-1]["phase"] == "interrupted"
    stopped_at = rest[-1]["step"]
    assert stopped_at >= max(line["step"] for line in first + rest if line["phase"] == "train")
    assert checkpoint_step() == stopped_at  # the interrupt saved the last finished step, and says which
    assert outputs() == [CHECKPOINT_NAME]  # no adapter, no metrics, no temp files

    # A rerun finishes the run, and ends exactly where an uninterrupted run ends.
    code, lines, stderr = run_cli(*args)
    assert code == 0, stderr
    resumed = json.loads((run_dir / METRICS_FILE).read_text())
    assert resumed["resumed_from"] == stopped_at and len(resumed["losses"]) == 6
    args[args.index(str(run_dir))] = str(tmp_path / "straight")
    code, _, stderr = run_cli(*args)
    assert code == 0, stderr
    straight = json.loads((tmp_path / "straight" / METRICS_FILE).read_text())
    assert np.allclose(resumed["losses"], straight["losses"], rtol=1e-4, atol=1e-5)
