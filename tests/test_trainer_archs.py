"""qwen2, qwen3 and gemma3 (architectures we do not ship) as tiny random GGUFs: load, train, export, back into llama.cpp.

Also DPO and KTO, which need a model but not a good one.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from desktop.modelfile import default_model_path
from trainer.config import TrainConfig
from trainer.data import read_dataset
from trainer.progress import Reporter
from trainer.stop import StopSignal
from trainer.train import ADAPTER_FILE, run
from trainer_fixtures import (
    THREADS,
    adapter_loads,
    agreement,
    chat,
    llama_logits,
    torch_logits,
    trained_model,
    vocabulary,
    write_jsonl,
    write_tiny_gguf,
)

# A high learning rate so two steps move the logits far more than the runtimes disagree.
TINY_TRAINING = dict(lr=1e-2, warmup_steps=1, max_steps=2, seq_len=64, batch_size=2, threads=THREADS, merge_type="none")
SFT_ROWS = [chat("My dog is called Biscuit.", "Noted: your dog is Biscuit."), chat("What is 2+2?", "4"),
            chat("Name a colour.", "Blue."), chat("Say hi.", "Hi there!")]
PROBE_IDS = list(range(500, 560))


@pytest.fixture(scope="module")
def vocab():
    """The default model's tokenizer keys, borrowed so tiny models read real text."""
    return vocabulary(default_model_path())


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-sft")
    write_jsonl(folder / "sft.jsonl", SFT_ROWS)
    return read_dataset(folder)


@pytest.fixture(scope="module")
def tiny(vocab, tmp_path_factory):
    """One tiny GGUF per architecture, written once for the module."""
    folder = tmp_path_factory.mktemp("tiny")
    return {arch: write_tiny_gguf(arch, folder / f"{arch}.gguf", vocab) for arch in ("qwen2", "qwen3", "gemma3")}


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """A dequantized-weights cache per architecture (a cache keeps only two models)."""
    root = tmp_path_factory.mktemp("tiny-dequant")
    return {arch: root / arch for arch in ("qwen2", "qwen3", "gemma3")}


def train_tiny(model: Path, data, run_dir: Path, cache: Path, **overrides) -> tuple[dict, TrainConfig]:
    config = TrainConfig(**{**TINY_TRAINING, **overrides})
    metrics = run(model, data, run_dir, config, [], cache, StopSignal(), Reporter(io.StringIO()))
    return metrics, config


@pytest.mark.parametrize("architecture", ["qwen2", "qwen3", "gemma3"])
def test_tiny_model_trains_and_its_adapter_matches_in_llama_cpp(architecture, tiny, sft_data, caches, tmp_path):
    model, run_dir, cache = tiny[architecture], tmp_path / "run", caches[architecture]
    metrics, config = train_tiny(model, sft_data, run_dir, cache)
    assert metrics["steps"] == 2 and all(np.isfinite(metrics["losses"]))
    adapter = run_dir / ADAPTER_FILE
    assert adapter_loads(model, adapter)

    base, peft_model = trained_model(model, run_dir, config, cache)
    assert base.architecture == architecture and base.from_cache
    with peft_model.disable_adapter():
        torch_base = torch_logits(peft_model, PROBE_IDS)
    torch_lora = torch_logits(peft_model, PROBE_IDS)
    floor = agreement(torch_base, llama_logits(model, PROBE_IDS))
    adapted = agreement(torch_lora, llama_logits(model, PROBE_IDS, adapter))
    effect = agreement(torch_lora, torch_base)
    assert floor["max_abs"] < 1e-2 and floor["top1"] == 1.0  # F32 tiny model: both runtimes compute the same thing
    assert effect["max_abs"] > 0.5  # the adapter changes the logits a lot...
    assert adapted["max_abs"] < 2e-2 and adapted["top1"] == 1.0  # ...and llama.cpp applies exactly that change


def test_dpo_widens_the_margin_between_chosen_and_rejected(tiny, caches, tmp_path):
    write_jsonl(tmp_path / "data" / "preference.jsonl", [
        {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"},
        {"prompt": [{"role": "user", "content": "Capital of Japan?"}], "chosen": [{"role": "assistant", "content": "Tokyo."}],
         "rejected": [{"role": "assistant", "content": "Osaka."}]},
    ])
    data = read_dataset(tmp_path / "data")
    metrics, _ = train_tiny(tiny["qwen2"], data, tmp_path / "run", caches["qwen2"], max_steps=4, lr=5e-3)
    losses = metrics["losses"]
    assert metrics["units"] == {"dpo": 2}
    assert losses[0] == pytest.approx(np.log(2), abs=1e-4)  # the adapter starts at zero: policy == reference
    assert losses[-1] < losses[0] - 0.05


def test_kto_learns_from_single_marks(tiny, caches, tmp_path):
    write_jsonl(tmp_path / "data" / "kto.jsonl", [
        {"prompt": "What is 2+2?", "completion": "4", "label": True},
        {"prompt": "What is 3+3?", "completion": "7", "label": False},
        {"prompt": "Capital of Japan?", "completion": "Tokyo.", "label": True},
    ])
    data = read_dataset(tmp_path / "data")
    metrics, _ = train_tiny(tiny["qwen2"], data, tmp_path / "run", caches["qwen2"], max_steps=4, batch_size=3)
    losses = metrics["losses"]
    assert metrics["units"] == {"kto": 3}
    assert losses[0] == pytest.approx(0.5, abs=1e-4)  # 1 - sigmoid(0) for every mark
    assert losses[-1] < losses[0] - 0.01


def test_objectives_combine_with_their_weights(tiny, caches, tmp_path):
    write_jsonl(tmp_path / "data" / "sft.jsonl", SFT_ROWS)
    write_jsonl(tmp_path / "data" / "preference.jsonl", [{"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}])
    data = read_dataset(tmp_path / "data")
    metrics, _ = train_tiny(tiny["qwen2"], data, tmp_path / "run", caches["qwen2"], max_steps=1, dpo_weight=0.0)
    alone = metrics["losses"][0]
    metrics, _ = train_tiny(tiny["qwen2"], data, tmp_path / "run2", caches["qwen2"], max_steps=1, dpo_weight=2.0)
    assert metrics["units"] == {"sft": 4, "dpo": 1}
    assert metrics["losses"][0] == pytest.approx(alone + 2.0 * np.log(2), abs=1e-3)
    assert json.loads((tmp_path / "run2" / "metrics.json").read_text())["losses"] == metrics["losses"]
