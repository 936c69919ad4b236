"""Every training knob in one place: objectives and weights, LoRA shape, optimisation, packing, threads, outputs."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from trainer.errors import BadInput

MERGE_TYPES = ("f16", "q8_0", "none")
REFUSED_KEYS = {
    "use_rslora": "rsLoRA scales by alpha/sqrt(r), but llama.cpp adapters always scale by alpha/r",
    "use_dora": "DoRA adds a magnitude vector that llama.cpp's LoRA format cannot carry",
}
RESUME_NEUTRAL = ("threads", "checkpoint_every", "merge_type", "compile_min_steps")
"""Fields a resumed run may change without invalidating its checkpoint."""


class ConfigError(BadInput):
    """A config file or value the trainer refuses, with a message naming what to change."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run's settings; a JSON file may override any field by name."""

    # Objectives: a weight of 0 turns one off; each runs only where its data file has rows.
    sft_weight: float = 1.0
    dpo_weight: float = 1.0
    kto_weight: float = 1.0
    dpo_beta: float = 0.1
    kto_beta: float = 0.1
    kto_desirable_weight: float = 1.0
    kto_undesirable_weight: float = 1.0
    anchor_weight: float = 1.0
    """KL to the current generation on its own answers (anchor.jsonl): holds what it knew while new facts go in."""
    anchor_rows: int = 1
    """Packed anchor rows per step."""
    anchor_top_k: int = 64
    """Tokens per position the anchor's KL sums over: the current generation's likeliest ones, computed once per row
    before training and kept, so steps skip the reference forward pass (1.95 → 1.76–1.85 s per step of a 40-fact dream)."""
    unlikely_weight: float = 1.0
    """-log(1 - p) of a taught value's first token where a near question's answer would carry it (unlikely.jsonl)."""
    unlikely_docs: int = 1
    """Unlikelihood conversations per step, packed together, chosen among the near frames of the values the step's SFT
    rows teach (pair_near_frames); they do not add steps. Each adds about 60 tokens to a step (the chat template's
    system prompt included): with 1, a step of a 40-fact dream took 1.94 s instead of 1.55 s."""
    grpo_weight: float = 1.0
    grpo_batch: int = 16
    """Sampled answers per step (two groups of eight)."""
    grpo_seq_len: int = 512
    """Longest sampled answer (with its prompt) trained whole; longer ones are cut, packed rows grow to fit."""
    grpo_clip: float = 0.2
    grpo_kl_beta: float = 0.04
    # LoRA (plain LoRA only: llama.cpp scales every adapter by alpha / r).
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    # Optimisation: linear warmup, then linear decay to zero at the last step.
    lr: float = 5e-4
    warmup_steps: int = 2
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    epochs: int = 1
    max_steps: int = 0
    """0: as many steps as `epochs` passes over the largest objective's batches take."""
    min_steps: int = 0
    """At least this many steps (cycling the data), so a handful of examples still gets enough updates; data that
    fills fewer gets exactly this many, however large the anchor."""
    seq_len: int = 512
    batch_size: int = 4
    """Packed rows per SFT step; pairs (DPO) or marks (KTO) per step for the others."""
    seed: int = 0
    threads: int = 0
    """0: all cores but one, which stays with the user (llama.cpp and the window)."""
    checkpoint_every: int = 10
    compile_min_steps: int = 150
    """A CPU run of at least this many steps compiles each decoder layer (torch.compile): a step of a 40-fact dream
    takes 1.32-1.49 s (compiling included; eight runs of 366 steps) instead of 1.81 s; compiling costs ~50 s the first
    time and ~10 s once inductor's cache holds it, so short runs stay eager. 0: never."""
    cpu_bf16: bool = False
    """On a CPU with bf16 instructions (AVX512_BF16 or AMX), train the frozen weights in bf16 (the LoRA stays fp32, as on
    CUDA): a 40-fact dream's step took 1.89 s instead of 2.31 s (AMD EPYC with AVX512_BF16, 2 threads, compiled). CPUs
    without them stay in fp32, where bf16 is 37-50x slower."""
    merge_type: str = "f16"
    """f16: a precise master the next generation can train on; q8_0: faster to serve, but re-quantizing it
    generation after generation adds error; none. Never 4-bit, which keeps only ~6 % of the update."""

    def __post_init__(self) -> None:
        """Refuses values that would train nonsense or export what llama.cpp cannot use."""
        if self.merge_type not in MERGE_TYPES:
            raise ConfigError(f"merge_type must be one of {', '.join(MERGE_TYPES)}, not {self.merge_type!r}")
        positive = ("lora_r", "lora_alpha", "lr", "seq_len", "batch_size", "anchor_rows", "anchor_top_k", "unlikely_docs", "grpo_batch", "grpo_seq_len", "epochs", "checkpoint_every")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, not {getattr(self, name)!r}")
        negative = [f.name for f in fields(self) if isinstance(getattr(self, f.name), (int, float)) and getattr(self, f.name) < 0]
        if negative:
            raise ConfigError(f"{', '.join(negative)} must not be negative")
        if not self.target_modules:
            raise ConfigError("target_modules must name at least one projection")

    def resolved_threads(self) -> int:
        """Threads torch may use: the configured number, or all cores but one."""
        return self.threads or max(1, (os.cpu_count() or 1) - 1)

    def identity(self) -> dict:
        """The fields that decide what a run computes; a checkpoint only resumes under the same identity."""
        data = asdict(self)
        for name in RESUME_NEUTRAL:
            del data[name]
        return data


def load_config(path: Path | None) -> TrainConfig:
    """The defaults, overridden by the JSON object in path; unknown or refused keys are errors."""
    if path is None:
        return TrainConfig()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"config file '{path}' cannot be read as JSON: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a JSON object")
    for key, why in REFUSED_KEYS.items():
        if data.pop(key, False):
            raise ConfigError(f"config file '{path}' asks for {key}: refused, {why}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"config file '{path}' has unknown keys {unknown}; known keys: {sorted(known)}")
    if "target_modules" in data:
        data["target_modules"] = tuple(data["target_modules"])
    try:
        return TrainConfig(**data)
    except ConfigError as err:
        raise ConfigError(f"config file '{path}': {err}") from err
    except TypeError as err:
        raise ConfigError(f"config file '{path}': {err}") from err
