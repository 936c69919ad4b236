"""Helpers for the trainer tests: tiny GGUF models of other architectures, and logits/answers from both runtimes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import llama_cpp
import numpy as np
import torch
from gguf import GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType
from transformers import AutoModelForCausalLM, Gemma3TextConfig, Qwen2Config, Qwen3Config

from trainer.checkpoint import load_checkpoint
from trainer.config import TrainConfig
from trainer.export_gguf import gguf_names, permute_rows, permuted_heads
from trainer.gguf_load import Base, load_base
from trainer.train import wrap_lora

REPO = Path(__file__).resolve().parents[1]
THREADS = 1  # other jobs share this machine's 2 cores; 2 torch threads collapse under contention
CONTEXT = 1024
TINY = dict(hidden_size=64, intermediate_size=128, max_position_embeddings=CONTEXT, rms_norm_eps=1e-6, tie_word_embeddings=True)
TINY_ROPE_THETA = 10000.0
TINY_SLIDING_WINDOW = 512
torch.set_num_threads(THREADS)


def tiny_config(architecture: str, vocab_size: int):
    """A few-layer random config of architecture that llama.cpp and transformers' GGUF loader both read the same way.

    qwen3 and gemma3 keep head_dim at transformers' defaults (128, 256): its GGUF config mapping reads no
    head size for qwen3 and gemma3 takes query_pre_attn_scalar from the default.
    """
    if architecture == "qwen2":
        return Qwen2Config(vocab_size=vocab_size, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, **TINY)
    if architecture == "qwen3":
        return Qwen3Config(
            vocab_size=vocab_size, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=128, **TINY
        )
    if architecture == "gemma3":
        return Gemma3TextConfig(
            vocab_size=vocab_size, num_hidden_layers=6, num_attention_heads=1, num_key_value_heads=1, head_dim=256,
            sliding_window=TINY_SLIDING_WINDOW, **TINY,
        )
    raise ValueError(architecture)


def vocabulary(source: Path) -> list[tuple[str, object, GGUFValueType, GGUFValueType | None]]:
    """The tokenizer keys of a GGUF (the default model's byte-level BPE), to give tiny models real text."""
    reader = GGUFReader(source)
    keys = []
    for name, field in reader.fields.items():
        if name.startswith("tokenizer."):
            vtype = field.types[0]
            keys.append((name, field.contents(), vtype, field.types[-1] if vtype == GGUFValueType.ARRAY else None))
    return keys


def write_tiny_gguf(architecture: str, path: Path, vocab: list, seed: int = 0) -> Path:
    """A random tiny model of architecture written as an F32 GGUF with llama.cpp's names, layout and metadata."""
    tokens = next(value for name, value, _, _ in vocab if name == "tokenizer.ggml.tokens")
    config = tiny_config(architecture, len(tokens))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    head_dim = getattr(config, "head_dim", config.hidden_size // config.num_attention_heads)
    writer = GGUFWriter(path, architecture)
    writer.add_name(f"tiny-{architecture}")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(1e6 if architecture == "gemma3" else TINY_ROPE_THETA)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    if architecture == "gemma3":
        writer.add_sliding_window(TINY_SLIDING_WINDOW)
    writer.add_file_type(LlamaFileType.ALL_F32)
    for name, value, vtype, sub_type in vocab:
        if architecture == "gemma3" and name == "tokenizer.chat_template":
            continue  # no template: the engine's fallback format for gemma3 is exercised instead
        writer.add_key_value(name, value, vtype, sub_type=sub_type)
    names = gguf_names(architecture, model)
    heads = permuted_heads(architecture, model)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight":
            continue  # tied to the token embeddings
        module, suffix = hf_name.rsplit(".", 1)
        gguf_name = names[module]
        data = tensor.float().numpy()
        if architecture == "gemma3" and "norm" in gguf_name:
            data = data + 1  # llama.cpp stores gemma norms as 1 + w (transformers subtracts 1 on load)
        kind = gguf_name.rsplit(".", 1)[-1]
        if kind in heads and suffix == "weight":
            data = permute_rows(data, heads[kind])
        writer.add_tensor(f"{gguf_name}.{suffix}", np.ascontiguousarray(data, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def trained_model(model_path: Path, run_dir: Path, config: TrainConfig, cache_dir: Path) -> tuple[Base, torch.nn.Module]:
    """A fresh base from the cache with the run's final LoRA weights from its checkpoint (torch's view of the run)."""
    base = load_base(model_path, cache_dir)
    peft_model = wrap_lora(base, config)
    params = dict(peft_model.named_parameters())
    with torch.no_grad():
        for name, value in load_checkpoint(run_dir)["adapter"].items():
            params[name].copy_(value)
    peft_model.eval()
    return base, peft_model


def torch_logits(model: torch.nn.Module, ids: list[int]) -> np.ndarray:
    """Next-token logits at every position."""
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float().numpy()


def adapter_loads(model_path: Path, adapter: Path) -> bool:
    """Whether llama.cpp's llama_adapter_lora_init returns non-NULL, asked in a child process (a bad file may crash it)."""
    code = (
        "import sys, llama_cpp\n"
        "p = llama_cpp.llama_model_default_params()\n"
        "m = llama_cpp.llama_model_load_from_file(sys.argv[1].encode(), p)\n"
        "a = llama_cpp.llama_adapter_lora_init(m, sys.argv[2].encode()) if m else None\n"
        "print('LOADED' if a else 'NULL')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(model_path), str(adapter)], capture_output=True, text=True, timeout=120
    )
    return result.returncode == 0 and result.stdout.strip().endswith("LOADED")


def open_llama(model_path: Path, adapter: Path | None = None) -> llama_cpp.Llama:
    """llama.cpp on the model (and adapter), keeping logits for every position."""
    extra = {"lora_path": str(adapter)} if adapter else {}
    return llama_cpp.Llama(model_path=str(model_path), n_ctx=CONTEXT, n_threads=THREADS, n_threads_batch=THREADS,
                           logits_all=True, verbose=False, **extra)


def llama_logits(model_path: Path, ids: list[int], adapter: Path | None = None) -> np.ndarray:
    """llama.cpp's next-token logits at every position."""
    llm = open_llama(model_path, adapter)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)], dtype=np.float32)
    finally:
        llm.close()


def agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """Top-1 agreement, max, 99.9th-percentile and mean |Δlogit|, mean KL(reference || other) over positions."""
    def log_softmax(x: np.ndarray) -> np.ndarray:
        shifted = x - x.max(-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))

    p, q = log_softmax(reference.astype(np.float64)), log_softmax(other.astype(np.float64))
    return {
        "top1": float((reference.argmax(-1) == other.argmax(-1)).mean()),
        "max_abs": float(np.abs(reference - other).max()),
        "p999_abs": float(np.quantile(np.abs(reference - other), 0.999)),
        "mean_abs": float(np.abs(reference - other).mean()),
        "kl": float((np.exp(p) * (p - q)).sum(-1).mean()),
    }


def run_cli(*args: str, timeout: float = 300) -> tuple[int, list[dict], str]:
    """Runs `python -m trainer`, returning its exit code, its JSON progress lines and its stderr."""
    result = subprocess.run([sys.executable, "-m", "trainer", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.returncode, lines, result.stderr


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """Writes rows as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def chat(user: str, assistant: str) -> dict:
    """One SFT row: a question and the answer to learn."""
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def answers(model_path: Path, questions: list[str], adapter: Path | None = None, max_tokens: int = 24) -> list[str]:
    """Greedy answers through the GGUF's own chat template, one fresh conversation per question."""
    llm = open_llama(model_path, adapter)
    try:
        replies = []
        for question in questions:
            llm.reset()
            reply = llm.create_chat_completion([{"role": "user", "content": question}], temperature=0.0, max_tokens=max_tokens)
            replies.append(reply["choices"][0]["message"]["content"].strip())
        return replies
    finally:
        llm.close()
