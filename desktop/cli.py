"""The `nightschool` command: the window by default, and headless subcommands on the same core."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from desktop import __version__, cli_signals

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nightschool", description="A local assistant that learns on the job.")
    parser.add_argument("--version", action="version", version=f"nightschool {__version__}")
    parser.add_argument("--model", metavar="PATH", help="a GGUF chat model to use instead of the configured one")
    sub = parser.add_subparsers(dest="command")
    chat = sub.add_parser("chat", help="ask one question, stream the answer and store it")
    chat.add_argument("question")
    chat.add_argument("--conversation", type=int, metavar="ID", help="continue this conversation")
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--max-tokens", type=int)
    sub.add_parser("doctor", help="print the model, the llama.cpp build and the data folder")
    dream = sub.add_parser("dream", help="dream now: consolidate what was taught into a new model generation")
    dream.add_argument("--threads", type=int, help="threads for the dream (default: all cores; nobody is chatting)")
    cli_signals.add_parsers(sub)
    bench = sub.add_parser("bench", help="benchmarks (JSON on the last line)")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    engine = bench_sub.add_parser("engine", help="decode speed, warm time to first token, GUI stalls")
    engine.add_argument("--threads", type=int, help="threads for both engines (default: settings)")
    engine.add_argument("--tokens", type=int, default=128, help="tokens to decode per run")
    recall = bench_sub.add_parser("recall", help="teach facts, dream once, measure recall, retention and leaks")
    recall.add_argument("--facts", type=Path, required=True, help="a recall-*.jsonl file (teach, probes, near_misses)")
    recall.add_argument("--retention", type=Path, help='{"question", "expect"} lines (default: the shipped set)')
    recall.add_argument("--home", type=Path, help="data folder for the run (default: a fresh temporary one)")
    recall.add_argument("--threads", type=int, help="threads (default: all cores)")
    verifiable = bench_sub.add_parser("verifiable", help="import checkable tasks, dream N times, measure the held-out pass rate")
    verifiable.add_argument("--tasks", type=Path, required=True, help="a verifiable-*.jsonl file (prompt, verifier, split)")
    verifiable.add_argument("--dreams", type=int, default=3)
    verifiable.add_argument("--home", type=Path, help="data folder for the run (default: a fresh temporary one)")
    verifiable.add_argument("--threads", type=int, help="threads (default: all cores)")
    trainer = bench_sub.add_parser("trainer", help="the trainer against a plain transformers+peft loop (runs `python -m trainer bench`)")
    trainer.add_argument("trainer_args", nargs=argparse.REMAINDER, help="passed on, e.g. --steps 4 --seq 256 --batch 4")
    engine.add_argument("--runs", type=int, default=10, help="back-to-back engine/raw pairs (alternating which goes first); medians count")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `nightschool` script."""
    args = _parser().parse_args(argv)
    if args.command == "chat":
        return _chat(args)
    if args.command == "doctor":
        return _doctor(args)
    if args.command == "dream":
        return _dream(args)
    if args.command in cli_signals.COMMANDS:
        return cli_signals.run(args)
    if args.command == "bench" and args.bench == "trainer":
        import subprocess

        model = ["--model", args.model] if args.model else []
        passed = [arg for arg in args.trainer_args if arg != "--"]
        return subprocess.call([sys.executable, "-m", "trainer", "bench", *model, *passed])
    if args.command == "bench" and args.bench == "recall":
        from desktop.bench_recall import run_recall_bench

        model = Path(args.model) if args.model else None
        print(json.dumps(run_recall_bench(args.facts, args.retention, model, args.home, args.threads)))
        return 0
    if args.command == "bench" and args.bench == "verifiable":
        from desktop.bench_verifiable import run_verifiable_bench

        model = Path(args.model) if args.model else None
        print(json.dumps(run_verifiable_bench(args.tasks, args.dreams, model, args.home, args.threads)))
        return 0
    if args.command == "bench":
        from desktop.bench_engine import run_engine_bench

        print(json.dumps(run_engine_bench(args.model, args.threads, args.tokens, args.runs)))
        return 0
    from desktop.ui.app import run_app

    return run_app(model_override=args.model)


def _chat(args: argparse.Namespace) -> int:
    """Streams one answer to stdout and stores the exchange like the window would."""
    from dataclasses import replace

    from desktop.boot import boot, load_options, model_path, sampling
    from desktop.engine import Engine, EngineError
    from desktop.modelfile import ModelFileError
    from desktop.session import ChatSession

    state = boot()
    for warning in state.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    params = sampling(state.settings)
    if args.temperature is not None:
        params = replace(params, temperature=args.temperature)
    if args.max_tokens is not None:
        params = replace(params, max_tokens=args.max_tokens)
    try:
        engine = Engine(load_options(state.settings, model_path(state.settings, args.model)))
    except (ModelFileError, EngineError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    session = ChatSession(state.store, state.settings.memory_items)
    cid = args.conversation or state.store.create_conversation()
    pending = session.send(cid, args.question)

    def show(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    try:
        result = engine.chat(pending.messages, params, show)
    except EngineError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print()
    session.finish(pending, result, session.register_model(engine.info))
    print(
        f"[conversation {cid} · {result.generated_tokens} tokens · {result.decode_tok_s:.1f} tok/s]",
        file=sys.stderr,
    )
    return 0


def _dream(args: argparse.Namespace) -> int:
    """Runs the same dream process the idle scheduler starts, and passes its progress lines through."""
    import os
    import subprocess

    from desktop import paths
    from desktop.boot import boot, model_path

    state = boot()
    if state.store.is_memory:
        print(f"error: {' '.join(state.warnings)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    threads = args.threads or os.cpu_count() or 1
    base = model_path(state.settings, args.model)
    state.store.close()
    command = [sys.executable, "-m", "desktop.dream", "--db", str(paths.db_path()), "--model", str(base),
               "--threads", str(threads)]
    return subprocess.call(command)


def _doctor(args: argparse.Namespace) -> int:
    """Prints what a bug report needs: the model, the llama.cpp build and where data lives."""
    from desktop import paths
    from desktop.boot import boot, model_path
    from desktop.engine import backend_info
    from desktop.modelfile import ModelFileError, inspect_gguf

    state = boot()
    backends = backend_info()
    rows = [("nightschool", __version__)]
    status = 0
    try:
        info = inspect_gguf(model_path(state.settings, args.model))
        rows += [
            ("model", f"{info.name} ({info.path})"),
            ("architecture", f"{info.architecture}, {info.n_layers} layers, trained context {info.context_length}"),
            ("quantization", f"{info.quantization}, {info.n_params / 1e6:.1f} M parameters, {info.size_bytes / 1e6:.1f} MB"),
            ("chat template", "from the GGUF" if info.chat_template else "none in the GGUF (a fallback format is used)"),
        ]
    except ModelFileError as err:
        rows.append(("model", f"PROBLEM: {err}"))
        status = EXIT_BAD_INPUT
    rows += [
        ("llama.cpp", f"llama-cpp-python {backends['llama_cpp_python']}, GPU offload: {'yes' if backends['gpu_offload'] else 'no'}"),
        ("backends", backends["system_info"]),
        ("data folder", str(paths.data_dir())),
        ("database", f"{state.store.path or 'in memory'} (schema v{state.store.schema_version})"),
        ("settings", str(state.settings_file or "not saved")),
    ]
    rows += [("warning", warning) for warning in state.warnings]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return status
