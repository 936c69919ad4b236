"""One training run: load the GGUF, read the signals, train a LoRA, export the adapter and the merged model."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import time
import warnings
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from trainer.atomic import remove_partials, write_json
from trainer.chat import Doc, encode, encode_avoiding, renderer_for
from trainer.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from trainer.config import TrainConfig
from trainer.data import DataError, Dataset
from trainer.errors import BadInput
from trainer.export_gguf import adapter_from_peft, fold_into, read_adapter, verify_adapter, write_adapter
from trainer.gguf_load import Base, cache_root, cpu_has_bf16, fingerprint, load_base
from trainer.merge import merge
from trainer.objectives import (
    anchor_loss, doc_logps, dpo_loss, grpo_loss, kto_loss, logps_of, sft_loss, target_logits, target_logps, top_logps,
    unlikelihood_loss,
)
from trainer.packing import IGNORE, Batch, collate, pack
from trainer.progress import Reporter, peak_rss_mb
from trainer.stop import StopSignal, make_backward_interruptible

ADAPTER_FILE = "adapter.gguf"
MERGED_FILE = "merged.gguf"
METRICS_FILE = "metrics.json"
FUSED = ("sft", "anchor", "unlikely")
"""Objectives whose loss needs only the adapted model's logits: a step computes all their rows in one forward pass.
On 2 cores (AMD EPYC, AVX-512, compiled) a 40-fact dream's step took 2.31 s row by row (two SFT rows, an anchor row
and an unlikelihood row) and four SFT rows 1.53 s together against 2.16 s one at a time."""


class RunDirError(BadInput):
    """A run directory whose checkpoint belongs to a different run."""


@dataclass
class Source:
    """One objective's units for the step loop, reshuffled each epoch from the seed so a resume sees the same order.

    Units are packed rows of docs (sft, anchor), (chosen, rejected) doc pairs (dpo), marks (kto): the marked doc,
    its prompt with the next mark's answer (for KTO's reference point), and whether the answer was good,
    (doc, advantage, reward) rollouts (grpo), or single docs (unlikely).
    """

    kind: str
    weight: float
    units: list
    per_step: int
    references: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    """The current generation's top_logps per anchor row (by the row's id), from keep_references."""
    schedule: list[list[int]] = field(default_factory=list)
    """Each step's unit indices, where they are chosen for the step rather than shuffled (pair_near_frames)."""

    def batches_per_epoch(self) -> int:
        """Steps one pass over the units takes."""
        return math.ceil(len(self.units) / self.per_step)

    def take(self, step: int, seed: int) -> list:
        """The units step trains on."""
        if self.schedule:
            return [self.units[i] for i in self.schedule[step]]
        epoch, index = divmod(step, self.batches_per_epoch())
        generator = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{self.kind}:{epoch}".encode()))
        order = torch.randperm(len(self.units), generator=generator).tolist()
        return [self.units[i] for i in order[index * self.per_step:(index + 1) * self.per_step]]


def build_sources(dataset: Dataset, base: Base, config: TrainConfig) -> list[Source]:
    """Tokenizes every row through the model's chat template and groups it per objective."""
    tokenizer = base.tokenizer
    renderer = renderer_for(base)
    limit = config.seq_len
    sources = []
    packed = (("sft", config.sft_weight, dataset.sft, config.batch_size),
              ("anchor", config.anchor_weight, dataset.anchor, config.anchor_rows))
    for kind, weight, conversations, per_step in packed:
        if weight and conversations:
            docs = [d for d in (encode(renderer, tokenizer, m).truncated(limit) for m in conversations) if d.trained]
            rows = [[docs[i] for i in row] for row in pack([len(d.ids) for d in docs], limit)]
            sources.append(Source(kind, weight, rows, per_step))
    if config.unlikely_weight and dataset.unlikely:
        docs = [encode_avoiding(renderer, tokenizer, r.messages, r.avoid).truncated(limit) for r in dataset.unlikely]
        sources.append(Source("unlikely", config.unlikely_weight, [d for d in docs if d.trained], config.unlikely_docs))
    if config.dpo_weight and dataset.preference:
        pairs = []
        for row in dataset.preference:
            chosen, rejected = (
                encode(renderer, tokenizer, row.prompt + answer, len(row.prompt)).truncated(limit)
                for answer in (row.chosen, row.rejected)
            )
            if chosen.trained and rejected.trained:
                pairs.append((chosen, rejected))
        sources.append(Source("dpo", config.dpo_weight, pairs, config.batch_size))
    if config.kto_weight and dataset.kto:
        marks = []
        for index, row in enumerate(dataset.kto):
            other = dataset.kto[(index + 1) % len(dataset.kto)]
            marked, mismatched = (
                encode(renderer, tokenizer, row.prompt + answer, len(row.prompt)).truncated(limit)
                for answer in (row.completion, other.completion)
            )
            if marked.trained and mismatched.trained:
                marks.append((marked, mismatched, row.desirable))
        sources.append(Source("kto", config.kto_weight, marks, config.batch_size))
    if config.grpo_weight and dataset.rollouts:
        sampled = [
            (encode(renderer, tokenizer, r.prompt + r.completion, len(r.prompt)).truncated(config.grpo_seq_len), r.advantage,
             r.reward)
            for r in dataset.rollouts
        ]
        sources.append(Source("grpo", config.grpo_weight, [u for u in sampled if u[0].trained], config.grpo_batch))
    return [s for s in sources if s.units]


def step_count(sources: list[Source], config: TrainConfig) -> int:
    """Steps for a run: `epochs` passes over every objective's batches, the anchor's included, except that a handful
    of examples (fewer steps than min_steps) gets exactly min_steps with the anchor cycling alongside: a large anchor
    pacing it repeated five corrections for 69 steps and cost general answers. Unlikelihood docs never add steps."""
    if config.max_steps:
        return config.max_steps
    learning = [s.batches_per_epoch() for s in sources if s.kind not in ("anchor", "unlikely")]
    if config.epochs * max(learning, default=0) < config.min_steps:
        return config.min_steps
    return config.epochs * max((s.batches_per_epoch() for s in sources if s.kind != "unlikely"), default=0)


def pair_near_frames(sources: list[Source], total: int, seed: int) -> None:
    """Gives each step the unlikelihood docs whose pushed-down value the step's SFT rows teach, least used first, so a
    value goes down in a near frame in the same update that raises it in its own and the update is about what tells
    the subjects apart. The recall bench's dream: 0.5875 of its probes from the weights alone and 1 of 40 near
    questions leaking paired, 0.525 and 3 shuffled; retrained with seed 1, 3 leaks against 5
    (docs/dream-experiments.md)."""
    kinds = {source.kind: source for source in sources}
    sft, near = kinds.get("sft"), kinds.get("unlikely")
    if sft is None or near is None:
        return
    pushed = [doc.target_ids for doc in near.units]
    rank = torch.randperm(len(pushed), generator=torch.Generator().manual_seed(seed)).argsort().tolist()  # breaks ties
    uses = [0] * len(pushed)
    near.schedule = []
    for step in range(total):
        taught = set().union(*(doc.target_ids for row in sft.take(step, seed) for doc in row))
        candidates = [i for i, ids in enumerate(pushed) if ids & taught] or range(len(pushed))
        chosen = sorted(candidates, key=lambda i: (uses[i], rank[i]))[:near.per_step]
        for i in chosen:
            uses[i] += 1
        near.schedule.append(chosen)


def make_batches(source: Source, units: list, seq_len: int, pad_id: int) -> list[tuple[Batch, torch.Tensor | None]]:
    """A step's units of the objectives that also run the current generation (GRPO, DPO, KTO) as forward passes: one
    per packed row of GRPO answers, one packed batch for pairs or marks, which stay together because their losses
    compare docs."""
    if source.kind == "grpo":  # each answer's loss stands alone, so rows go through one at a time
        rows = pack([len(doc.ids) for doc, _, _ in units], max(seq_len, *(len(doc.ids) for doc, _, _ in units)))
        return [(collate([units[i][0] for i in row], [list(range(len(row)))], pad_id),
                 torch.tensor([[units[i][1], units[i][2]] for i in row])) for row in rows]
    if source.kind == "dpo":
        docs = [doc for pair in units for doc in pair]
        return [(collate(docs, pack([len(d.ids) for d in docs], seq_len), pad_id), None)]
    docs = [marked for marked, _, _ in units] + [mismatched for _, mismatched, _ in units]
    flags = torch.tensor([desirable for _, _, desirable in units])
    return [(collate(docs, pack([len(d.ids) for d in docs], seq_len), pad_id), flags)]


def fused_rows(sources: list[Source], step: int, seed: int, seq_len: int) -> list[tuple[Source, list[list[Doc]]]]:
    """The step's packed rows of each FUSED objective; an anchor row is its unit itself (the key of its references)."""
    grouped = []
    for source in (s for s in sources if s.kind in FUSED):
        units = source.take(step, seed)
        if source.kind == "unlikely":
            units = [[units[i] for i in row] for row in pack([len(d.ids) for d in units], seq_len)]
        grouped.append((source, units))
    return grouped


def fused_loss(peft_model: PeftModel, grouped: list[tuple[Source, list[list[Doc]]]], pad_id: int) -> tuple[torch.Tensor, int]:
    """The FUSED objectives' weighted losses from one forward pass over all their rows, each the mean over its own
    target tokens as if its rows ran alone; and the tokens the rows cover."""
    rows = [row for _, own in grouped for row in own]
    starts = list(itertools.accumulate((len(row) for row in rows), initial=0))
    batch = collate([doc for row in rows for doc in row], [list(range(a, b)) for a, b in zip(starts, starts[1:])], pad_id)
    batch = batch.to(next(peft_model.parameters()).device)
    trained = batch.targets != IGNORE
    counts = [int(n.sum()) for n in trained.sum(dim=1).split([len(own) for _, own in grouped])]  # targets per source
    logits, targets = target_logits(peft_model.get_base_model(), batch).split(counts), batch.targets[trained].split(counts)
    total = torch.zeros((), device=batch.targets.device)
    for (source, own), policy, wanted in zip(grouped, logits, targets):
        if source.kind == "anchor":
            loss = anchor_loss(policy, *(torch.cat(parts) for parts in zip(*(source.references[id(row)] for row in own))))
        else:
            logps = logps_of(policy, wanted)
            loss = sft_loss(logps) if source.kind == "sft" else unlikelihood_loss(logps)
        total = total + source.weight * loss
    return total, batch.tokens


def keep_references(peft_model: PeftModel, source: Source, config: TrainConfig, pad_id: int) -> None:
    """The current generation's top_logps on every anchor row, computed before training: once per row, not per step."""
    model, device = peft_model.get_base_model(), next(peft_model.parameters()).device
    with torch.no_grad(), peft_model.disable_adapter():
        for unit in source.units:
            batch = collate(unit, [list(range(len(unit)))], pad_id)
            source.references[id(unit)] = top_logps(target_logits(model, batch.to(device)), config.anchor_top_k)


def objective_loss(
    peft_model: PeftModel, source: Source, batch: Batch, flags: torch.Tensor | None, config: TrainConfig
) -> tuple[torch.Tensor, float | None]:
    """The loss of a source outside FUSED on batch, and for GRPO the batch's expected reward under the policy being
    trained.

    These compare against the model with the adapter disabled: the current generation. The expected reward is
    self-normalised importance sampling over the sampled answers, so it rises as the policy moves toward the answers
    that passed.
    """
    model = peft_model.get_base_model()
    policy = target_logps(model, batch)
    with torch.no_grad(), peft_model.disable_adapter():
        reference = target_logps(model, batch)
    if source.kind == "grpo":
        flags = flags.to(policy.device)
        loss = grpo_loss(policy, reference, flags[batch.target_docs, 0], batch, config.grpo_clip, config.grpo_kl_beta)
        weights = torch.softmax(doc_logps(policy.detach() - reference, batch), dim=0)
        return loss, float((weights * flags[:, 1]).sum())
    reference = doc_logps(reference, batch)
    policy = doc_logps(policy, batch)
    if source.kind == "dpo":
        return dpo_loss(policy, reference, config.dpo_beta), None
    ratio = policy - reference
    marked, mismatched = ratio[: len(flags)], ratio[len(flags):]
    return kto_loss(
        marked, mismatched, flags.to(policy.device), config.kto_beta, config.kto_desirable_weight, config.kto_undesirable_weight
    ), None


def learning_rate(config: TrainConfig, step: int, total: int) -> float:
    """Linear warmup over warmup_steps, then linear decay that reaches zero just after the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    return config.lr * (total - step) / max(1, total - config.warmup_steps)


def wrap_lora(base: Base, config: TrainConfig) -> PeftModel:
    """Puts a fresh plain LoRA (llama.cpp's kind) on the model's target projections."""
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft 0.21 calls a method transformers 5.24 deprecates; nothing to act on
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(base.model, lora)


def compile_layers(peft_model: PeftModel) -> None:
    """Compiles each decoder layer's forward in place (module names, and so the exported adapter, stay as they are);
    the layers share one graph, so compiling costs about what one layer does. A layer inductor cannot compile (no C++
    compiler, say) runs eagerly."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_root() / "inductor"))
    torch._dynamo.config.suppress_errors = True
    for layer in peft_model.get_base_model().get_decoder().layers:
        layer.compile(dynamic=True)


def run_identity(config: TrainConfig, dataset: Dataset, base: Base, adapter_paths: list[Path]) -> str:
    """What a checkpoint must match to be resumed: settings, data, base model and stacked adapters."""
    parts = {
        "config": config.identity(),
        "data": dataset.digest,
        "base": base.fingerprint,
        "adapters": [fingerprint(p) for p in adapter_paths],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


class Trainer:
    """The state of one run's training loop, so an interrupt can checkpoint exactly the last finished step."""

    def __init__(self, peft_model: PeftModel, config: TrainConfig, run_dir: Path, identity: str) -> None:
        self.peft_model = peft_model
        self.config = config
        self.run_dir = run_dir
        self.identity = identity
        self.params = {name: p for name, p in peft_model.named_parameters() if p.requires_grad}
        self.optimizer = torch.optim.AdamW(self.params.values(), lr=config.lr, weight_decay=config.weight_decay)
        self.step = 0
        self.history: list[float] = []
        self.rewards: list[float] = []

    def resume(self) -> None:
        """Continues from the run directory's checkpoint, if it holds one of this very run."""
        state = load_checkpoint(self.run_dir)
        if state is None:
            return
        if state["identity"] != self.identity:
            raise RunDirError(
                f"run directory '{self.run_dir}' holds a checkpoint of a different run (model, data or config changed): "
                "use a new run directory, or delete its checkpoint.pt to start over"
            )
        with torch.no_grad():
            for name, value in state["adapter"].items():
                self.params[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        restore_rng(state["rng"])
        self.step, self.history, self.rewards = state["step"], state["history"], state.get("rewards", [])

    def checkpoint(self) -> None:
        """Saves the adapter, optimizer, step, loss history and RNG of the last finished step."""
        save_checkpoint(
            self.run_dir,
            {
                "identity": self.identity,
                "step": self.step,
                "adapter": {name: p.detach().cpu() for name, p in self.params.items()},
                "optimizer": self.optimizer.state_dict(),
                "rng": rng_state(),
                "history": self.history,
                "rewards": self.rewards,
            },
        )

    def step_once(self, sources: list[Source], total: int, pad_id: int, stop: StopSignal) -> tuple[float, int, float | None]:
        """One optimizer step over every source's batch; returns the loss, the real tokens trained on and GRPO's reward."""
        config, device = self.config, next(iter(self.params.values())).device
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(config, self.step, total)
        loss_sum, tokens, rewards = 0.0, 0, []
        grouped = fused_rows(sources, self.step, config.seed, config.seq_len)
        if grouped:
            loss, tokens = fused_loss(self.peft_model, grouped, pad_id)
            loss.backward()
            loss_sum += loss.item()
        for source in (s for s in sources if s.kind not in FUSED):
            parts = make_batches(source, source.take(self.step, config.seed), config.seq_len, pad_id)
            size = (lambda b: b.n_docs) if source.kind == "grpo" else (lambda b: b.n_targets)  # GRPO averages per answer
            whole = sum(size(batch) for batch, _ in parts)
            for batch, flags in parts:
                share = size(batch) / whole  # micro-batch means add up to the step's mean
                loss, batch_reward = objective_loss(self.peft_model, source, batch.to(device), flags, config)
                loss = source.weight * share * loss
                loss.backward()
                if batch_reward is not None:
                    rewards.append(share * batch_reward)
                loss_sum += loss.item()
                tokens += batch.tokens
        reward = sum(rewards) if rewards else None
        with stop.held():
            torch.nn.utils.clip_grad_norm_(self.params.values(), config.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            self.history.append(loss_sum)
            if reward is not None:
                self.rewards.append(reward)
            if self.step % config.checkpoint_every == 0 or self.step == total:
                self.checkpoint()
        return loss_sum, tokens, reward

    def train(self, sources: list[Source], total: int, pad_id: int, stop: StopSignal, reporter: Reporter) -> None:
        """Runs steps until total, checkpointing every checkpoint_every steps and at the end."""
        for source in sources:
            if source.kind == "anchor":
                keep_references(self.peft_model, source, self.config, pad_id)
        self.peft_model.train()
        make_backward_interruptible(self.params.values())
        while self.step < total:
            started = time.perf_counter()
            loss, tokens, reward = self.step_once(sources, total, pad_id, stop)
            reporter.step_done(self.step, loss, tokens, time.perf_counter() - started, reward)


def run(
    model_path: Path,
    dataset: Dataset,
    run_dir: Path,
    config: TrainConfig,
    adapter_paths: list[Path],
    cache_dir: Path | None,
    stop: StopSignal,
    reporter: Reporter,
) -> dict:
    """Trains and exports; returns the metrics also written to run_dir/metrics.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_partials(run_dir)
    threads = config.resolved_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    reporter.emit("load", message=str(model_path))
    base = load_base(model_path, cache_dir)
    stacked = [read_adapter(p) for p in adapter_paths]
    for adapter in stacked:
        fold_into(base.model, adapter, base.architecture)
    if config.cpu_bf16 and base.device.type == "cpu" and cpu_has_bf16():
        base.model.to(torch.bfloat16)  # after folding, so earlier generations' small updates add up in fp32

    reporter.emit("data", message=json.dumps(dataset.counts()))
    sources = build_sources(dataset, base, config)
    if not sources:
        raise DataError(f"data folder '{dataset.folder}' has no rows for the enabled objectives (rows {dataset.counts()}) "
                         "that fit the sequence length and carry a learning signal")
    total = step_count(sources, config)
    pair_near_frames(sources, total, config.seed)
    peft_model = wrap_lora(base, config)
    trainer = Trainer(peft_model, config, run_dir, run_identity(config, dataset, base, adapter_paths))
    trainer.resume()
    compiled = base.device.type == "cpu" and 0 < config.compile_min_steps <= total - trainer.step
    if compiled:
        compile_layers(peft_model)
    reporter.step, reporter.total = trainer.step, total
    resumed_from = trainer.step

    train_started = time.perf_counter()
    try:
        trainer.train(sources, total, base.pad_id, stop, reporter)
    except BaseException:
        with stop.held():
            trainer.checkpoint()
        reporter.step = trainer.step  # the interrupted/error line names the step the checkpoint holds
        raise
    train_s = time.perf_counter() - train_started

    reporter.emit("export", loss=trainer.history[-1] if trainer.history else None)
    adapter = adapter_from_peft(peft_model.get_base_model(), base.architecture, config.lora_alpha)
    write_adapter(run_dir / ADAPTER_FILE, adapter)
    verify_adapter(base.path, run_dir / ADAPTER_FILE)
    merged = None
    if config.merge_type != "none":
        reporter.emit("merge")
        merged = merge(base.path, [*stacked, adapter], run_dir / MERGED_FILE, config.merge_type)

    metrics = {
        "base": str(base.path),
        "base_fingerprint": base.fingerprint,
        "stacked_adapters": [str(p) for p in adapter_paths],
        "adapter": str(run_dir / ADAPTER_FILE),
        "merged": str(run_dir / MERGED_FILE) if merged else None,
        "device": str(base.device),
        "dtype": str(base.model.dtype).removeprefix("torch."),
        "threads": threads,
        "examples": dataset.counts(),
        "units": {s.kind: len(s.units) for s in sources},
        "steps": total,
        "resumed_from": resumed_from,
        "losses": trainer.history,
        "rewards": trainer.rewards,
        "skipped_groups": dataset.skipped_groups,
        "final_loss": trainer.history[-1] if trainer.history else None,
        "tok_s": reporter.tok_s,
        "train_s": train_s,
        "load_s": base.load_s,
        "dequant_cached": base.from_cache,
        "compiled": compiled,
        "peak_rss_mb": peak_rss_mb(),
        "merge": merged,
        "config": asdict(config),
    }
    write_json(run_dir / METRICS_FILE, metrics)
    return metrics
