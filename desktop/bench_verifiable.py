"""`nightschool bench verifiable`: do dreams that learn from verifier rewards raise the held-out pass rate?"""

from __future__ import annotations

import sys
from pathlib import Path

from desktop import rlvr
from desktop.bench_setup import BenchHome, dream, fresh_home
from desktop.dream import EVAL_CONTEXT, DreamRecipe
from desktop.engine import Engine, LoadOptions
from desktop.generations import Generations
from desktop.importer import import_file
from desktop.signals import Signals
from desktop.store import Store


def _eval(bench: BenchHome, tasks: list[rlvr.Task]) -> rlvr.PassRate:
    """Greedy pass rate of the active generation (the base before any dream) on the held-out tasks."""
    store = Store(bench.db)
    try:
        generation = Generations(store).active(bench.base)
    finally:
        store.close()
    model = Path(generation["model_path"]) if generation else bench.base
    engine = Engine(LoadOptions(model_path=model, n_ctx=EVAL_CONTEXT, n_threads=bench.threads))
    try:
        return rlvr.pass_rate(engine, tasks, DreamRecipe.rl_answer, DreamRecipe.rl_short_tokens)
    finally:
        engine.close()


def run_verifiable_bench(tasks_file: Path, dreams: int, model: Path | None, home: Path | None,
                         threads: int | None) -> dict:
    """Imports the train split as the pool, measures the eval split, dreams N times, measures again."""
    bench = fresh_home(home, model, threads, "nightschool-verifiable-")
    store = Store(bench.db)
    counts = import_file(Signals(store), tasks_file)
    pool, held = rlvr.pool(Signals(store))
    store.close()
    print(f"imported {counts['tasks']} tasks: {len(pool)} to learn from, {len(held)} held out", file=sys.stderr)
    before = _eval(bench, held)
    print(f"before: {before.summary()}", file=sys.stderr)
    seconds, codes = [], []
    for number in range(dreams):
        code, took = dream(bench)
        codes.append(code)
        seconds.append(round(took, 1))
        print(f"dream {number + 1}: exit {code}, {took:.0f} s", file=sys.stderr)
    store = Store(bench.db)
    try:
        history = Generations(store).dreams()[::-1]
    finally:
        store.close()
    after = _eval(bench, held)
    return {
        "before": round(before.overall, 4),
        "after": round(after.overall, 4),
        "per_kind_before": {k: round(v, 4) for k, v in before.per_family().items()},
        "per_kind_after": {k: round(v, 4) for k, v in after.per_family().items()},
        "dreams": dreams,
        "dream_s": seconds,
        "promoted": [d["outcome"] == "promoted" for d in history],
        "reasons": [d["reason"] for d in history],
        "dream_exit_codes": codes,
        "home": str(bench.home),
    }
