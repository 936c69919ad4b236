"""`python -m trainer bench`: the trainer's step against a plain transformers+peft loop, same model, data, shapes.

The baseline is the loop people write first: padded batches of whole conversations, loss on every token; it is
measured twice, padded to the sequence length (the issue's setup) and, stricter, to each batch's longest row.
Both count real (non-padding) tokens per second, after one untimed warm-up step each, on the same threads.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from desktop.engine import ChatMessage
from desktop.modelfile import default_model_path
from trainer.config import TrainConfig
from trainer.data import Dataset
from trainer.gguf_load import load_base
from trainer.progress import peak_rss_mb
from trainer.stop import StopSignal
from trainer.train import Trainer, build_sources, wrap_lora

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "bench" / "recall-public.jsonl"
WARMUP_STEPS = 1
STEPS_AHEAD = 1000
"""The schedule's horizon in the bench, so no step lands on the final-step checkpoint or a zero learning rate."""


def teach_conversations(path: Path) -> list[list[ChatMessage]]:
    """The teach exchanges of a recall file; its probes and near misses are for measuring and never trained on."""
    return [json.loads(line)["teach"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _trainer_tok_s(
    model_path: Path, dataset: Dataset, config: TrainConfig, cache_dir: Path | None, steps: int
) -> tuple[float, float]:
    """Tokens/s of the trainer's own step (packed rows, assistant-only loss), and the model's load seconds."""
    base = load_base(model_path, cache_dir)
    sources = build_sources(dataset, base, config)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(wrap_lora(base, config), config, Path(run_dir), "bench")
        trainer.peft_model.train()
        stop = StopSignal()
        for _ in range(WARMUP_STEPS):
            trainer.step_once(sources, STEPS_AHEAD, base.pad_id, stop)
        tokens, started = 0, time.perf_counter()
        for _ in range(steps):
            tokens += trainer.step_once(sources, STEPS_AHEAD, base.pad_id, stop)[1]
        return tokens / (time.perf_counter() - started), base.load_s


def _baseline_tok_s(
    model_path: Path, conversations: list[list[ChatMessage]], config: TrainConfig, cache_dir: Path | None, steps: int,
    padding: str,
) -> float:
    """Real tokens/s of a plain loop, loss on all tokens; padding "max_length" fills every row to the sequence
    length (the plain loop at the same sequence length), "longest" only to the batch's longest row."""
    base = load_base(model_path, cache_dir)
    tokenizer = base.tokenizer
    model = wrap_lora(base, config)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    tokens, started = 0, 0.0
    for step in range(WARMUP_STEPS + steps):
        if step == WARMUP_STEPS:
            tokens, started = 0, time.perf_counter()
        first = step * config.batch_size % len(texts)
        batch = tokenizer(
            texts[first:first + config.batch_size],
            padding=padding,
            truncation=True,
            max_length=config.seq_len,
            add_special_tokens=False,
            return_tensors="pt",
        )
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    return tokens / (time.perf_counter() - started)


def bench(args: argparse.Namespace) -> dict:
    """Measures both loops in one process and prints the result as the last line."""
    model_path = args.model or default_model_path()
    data_path = args.data or DEFAULT_DATA
    config = TrainConfig(seq_len=args.seq, batch_size=args.batch, threads=args.threads, merge_type="none", sft_weight=1.0)
    threads = config.resolved_threads()
    torch.set_num_threads(threads)
    conversations = teach_conversations(data_path)
    dataset = Dataset(data_path.parent, sft=conversations)
    print(f"bench: {len(conversations)} teach conversations, seq {args.seq}, batch {args.batch}, {threads} threads", flush=True)
    trainer_tok_s, load_s = _trainer_tok_s(model_path, dataset, config, args.cache_dir, args.steps)
    print(f"bench: trainer {trainer_tok_s:.1f} tok/s", flush=True)
    baseline_tok_s = _baseline_tok_s(model_path, conversations, config, args.cache_dir, args.steps, "max_length")
    print(f"bench: baseline padded to the sequence length {baseline_tok_s:.1f} tok/s", flush=True)
    longest_tok_s = _baseline_tok_s(model_path, conversations, config, args.cache_dir, args.steps, "longest")
    print(f"bench: baseline padded to each batch's longest row {longest_tok_s:.1f} tok/s", flush=True)
    result = {
        "trainer_tok_s": round(trainer_tok_s, 1),
        "baseline_tok_s": round(baseline_tok_s, 1),
        "ratio": round(trainer_tok_s / baseline_tok_s, 2),
        "baseline_longest_tok_s": round(longest_tok_s, 1),
        "ratio_vs_longest": round(trainer_tok_s / longest_tok_s, 2),
        "peak_rss_mb": peak_rss_mb(),
        "load_s": round(load_s, 2),
        "threads": threads,
        "steps": args.steps,
        "seq": args.seq,
        "batch": args.batch,
    }
    print(json.dumps(result), flush=True)
    return result
