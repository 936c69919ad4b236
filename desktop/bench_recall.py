"""`nightschool bench recall`: does a dream move taught facts from the prompt into the weights without damage?"""

from __future__ import annotations

import sys
from pathlib import Path

from desktop.bench_setup import dream, fresh_home
from desktop.dream import DATA, PPL_CONTEXT, load_questions
from desktop.engine import Engine, LoadOptions
from desktop.evaluate import Question, score
from desktop.generations import Generations
from desktop.importer import import_file
from desktop.signals import Signals
from desktop.store import Store

BENCH_CONTEXT = 2048


def _measure(model: Path, threads: int, questions: dict[str, list[Question]], memory_limit: int,
             signals: Signals | None) -> dict[str, float]:
    """Fractions per question set on one model; short-term memory from signals when memory_limit > 0."""
    engine = Engine(LoadOptions(model_path=model, n_ctx=BENCH_CONTEXT, n_threads=threads))
    memory = signals.memory_items() if signals else []
    try:
        return {name: score(engine, qs, memory, memory_limit).fraction for name, qs in questions.items()}
    finally:
        engine.close()


def _perplexity(model: Path, threads: int) -> float:
    texts = (DATA / "general_text.txt").read_text(encoding="utf-8").splitlines()
    engine = Engine(LoadOptions(model_path=model, n_ctx=PPL_CONTEXT, n_threads=threads, logits_all=True))
    try:
        return engine.perplexity(texts)
    finally:
        engine.close()


def run_recall_bench(facts: Path, retention: Path | None, model: Path | None, home: Path | None,
                     threads: int | None) -> dict:
    """The five steps of the recall benchmark, in a fresh data folder, greedy throughout."""
    bench = fresh_home(home, model, threads, "nightschool-recall-")
    base, threads, settings = bench.base, bench.threads, bench.settings
    store = Store(bench.db)
    signals = Signals(store)
    counts = import_file(signals, facts)
    probes = [Question(p["question"], tuple(p["strings"])) for p in signals.probes() if p["kind"] == "probe"]
    near = [Question(p["question"], tuple(p["strings"])) for p in signals.probes() if p["kind"] == "near_miss"]
    general = load_questions(retention or DATA / "retention.jsonl")
    sets = {"probes": probes, "near": near, "retention": general}
    print(f"taught {counts['taught']} facts; {len(probes)} probes, {len(near)} near-misses", file=sys.stderr)

    before = _measure(base, threads, sets, 0, None)
    in_context = _measure(base, threads, {"probes": probes}, settings.memory_items, signals)["probes"]
    ppl_before = _perplexity(base, threads)
    print(f"before: {before}, in_context {in_context:.3f}, ppl {ppl_before:.2f}", file=sys.stderr)

    store.close()
    dream_code, dream_s = dream(bench)

    store = Store(bench.db)
    signals = Signals(store)
    generation = Generations(store).active(base)
    after_model = Path(generation["model_path"]) if generation else base
    after = _measure(after_model, threads, sets, 0, None)
    with_memory = _measure(after_model, threads, {"probes": probes}, settings.memory_items, signals)["probes"]
    ppl_after = _perplexity(after_model, threads)
    store.close()
    return {
        "base": round(before["probes"], 4),
        "in_context": round(in_context, 4),
        "after_dream": round(after["probes"], 4),
        "after_dream_with_memory": round(with_memory, 4),
        "retention_before": round(before["retention"], 4),
        "retention_after": round(after["retention"], 4),
        "leak_before": round(before["near"], 4),
        "leak_after": round(after["near"], 4),
        "ppl_before": round(ppl_before, 3),
        "ppl_after": round(ppl_after, 3),
        "dream_s": round(dream_s, 1),
        "promoted": generation is not None,
        "dream_exit_code": dream_code,
        "home": str(bench.home),
    }
