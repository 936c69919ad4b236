"""`nightschool bench engine`: the app's engine against a plain llama-cpp-python loop, in one run, on one model."""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import llama_cpp

from desktop.boot import model_path
from desktop.engine import Engine, LoadOptions, SamplingParams
from desktop.settings import Settings

BENCH_CONTEXT = 2048
PROMPT = [{"role": "user", "content": "Write a detailed essay about the history of the Roman Empire."}]
FOLLOW_UP = "Summarize that in one sentence, please."
STALL_TICK_MS = 5
"""The GUI probe timer's period: any gap between its ticks beyond this is time the event loop was blocked."""


def _raw_decode_tok_s(llm: llama_cpp.Llama, tokens: list[int], n_tokens: int) -> tuple[float, int]:
    """The baseline: llama-cpp-python's own generate loop, greedy, nothing else."""
    llm.reset()
    count = 0
    first = time.perf_counter()
    for token in llm.generate(tokens, temp=0.0, top_p=1.0, reset=True):
        if count == 0:
            first = time.perf_counter()
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
            break
        count += 1
        if count >= n_tokens:
            break
    end = time.perf_counter()
    return (count - 1) / (end - first), count


def _engine_decode_tok_s(engine: Engine, n_tokens: int) -> tuple[float, int]:
    """The same request through the app's engine (template, detokenizing, stop checks, callbacks)."""
    engine._llm.reset()
    result = engine.chat(PROMPT, SamplingParams(temperature=0.0, top_p=1.0, max_tokens=n_tokens))
    return result.decode_tok_s, result.generated_tokens


def _warm_ttft(engine: Engine) -> tuple[float, int]:
    """Time to the first streamed piece of a follow-up turn, with the conversation already in the KV cache."""
    first = engine.chat(PROMPT, SamplingParams(temperature=0.0, max_tokens=64))
    messages = PROMPT + [{"role": "assistant", "content": first.text}, {"role": "user", "content": FOLLOW_UP}]
    start = time.perf_counter()
    seen: list[float] = []
    result = engine.chat(messages, SamplingParams(temperature=0.0, max_tokens=8), lambda _p: seen.append(time.perf_counter()))
    return seen[0] - start, result.prompt_tokens - result.reused_tokens


def _gui_stall_ms(path: Path, threads: int, n_tokens: int) -> tuple[float, float]:
    """Streams one answer through the real window and reports the longest event-loop stall and the GUI's tok/s."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer

    from desktop.ui.app import make_window

    with tempfile.TemporaryDirectory(prefix="nightschool-bench-") as home:
        os.environ["NIGHTSCHOOL_HOME"] = home
        settings = {"model_path": str(path), "n_threads": threads, "n_ctx": BENCH_CONTEXT, "temperature": 0.0, "max_tokens": n_tokens}
        Path(home, "settings.json").write_text(json.dumps(settings))
        window = make_window()
        window.show()
        loop = QEventLoop()
        window.engine.worker.loaded.connect(loop.quit)
        loop.exec()
        clock = QElapsedTimer()
        gaps: list[int] = []
        probe = QTimer(interval=STALL_TICK_MS)
        probe.timeout.connect(lambda: gaps.append(clock.restart()))
        window.engine.worker.finished.connect(lambda *_: QTimer.singleShot(100, loop.quit))
        clock.start()
        probe.start()
        window.send(PROMPT[0]["content"])
        loop.exec()
        probe.stop()
        speed = window.state.store.active_path(window.current_id)[-1]["stats"]["decode_tok_s"]
        window.close()
    return max(gaps[1:]) - STALL_TICK_MS, speed


def run_engine_bench(model: str | None, threads: int | None, n_tokens: int, runs: int) -> dict:
    """Engine vs raw decode speed as the median of back-to-back pairs (the machine drifts between pairs), TTFT, GUI stall."""
    settings = Settings()
    path = model_path(settings, model)
    n_threads = threads or settings.threads()
    options = LoadOptions(model_path=path, n_ctx=BENCH_CONTEXT, n_threads=n_threads)
    engine = Engine(options)
    raw = llama_cpp.Llama(model_path=str(path), n_ctx=BENCH_CONTEXT, n_threads=n_threads, n_threads_batch=n_threads, verbose=False)
    tokens = engine.tokenize_chat(PROMPT)
    raw_speeds, engine_speeds, ratios = [], [], []
    for run in range(runs):
        if run % 2:
            engine_speed, engine_count = _engine_decode_tok_s(engine, n_tokens)
            raw_speed, raw_count = _raw_decode_tok_s(raw, tokens, n_tokens)
        else:
            raw_speed, raw_count = _raw_decode_tok_s(raw, tokens, n_tokens)
            engine_speed, engine_count = _engine_decode_tok_s(engine, n_tokens)
        raw_speeds.append(raw_speed)
        engine_speeds.append(engine_speed)
        ratios.append(engine_speed / raw_speed)
        print(f"run {run + 1}: raw {raw_speed:.1f} tok/s ({raw_count}), engine {engine_speed:.1f} tok/s ({engine_count})", file=sys.stderr)
    raw.close()
    ttft, evaluated = _warm_ttft(engine)
    engine.close()
    stall, gui_speed = _gui_stall_ms(path, n_threads, n_tokens)
    return {
        "engine_tok_s": round(statistics.median(engine_speeds), 2),
        "raw_tok_s": round(statistics.median(raw_speeds), 2),
        "ratio": round(statistics.median(ratios), 3),
        "warm_ttft_s": round(ttft, 4),
        "max_gui_stall_ms": round(stall, 1),
        "gui_tok_s": round(gui_speed, 2),
        "follow_up_tokens_evaluated": evaluated,
        "threads": n_threads,
        "model": path.name,
    }
