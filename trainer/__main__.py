"""`python -m trainer train|bench`: the training process the app starts; exit 0 done, 2 bad input, 3 interrupted."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from desktop.modelfile import ModelFileError
from trainer.config import load_config
from trainer.data import read_dataset
from trainer.errors import BadInput
from trainer.progress import Reporter
from trainer.stop import Interrupted, StopSignal

EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: train a generation, or benchmark the training loop."""
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a LoRA on exported signals; JSON progress lines on stdout")
    train.add_argument("--model", type=Path, required=True, help="the base GGUF (the generation the app runs)")
    train.add_argument("--data", type=Path, required=True, help="folder with sft.jsonl / preference.jsonl / kto.jsonl")
    train.add_argument("--run-dir", type=Path, required=True, help="outputs and checkpoint; rerun to resume")
    train.add_argument("--config", type=Path, help="JSON object overriding TrainConfig fields")
    train.add_argument("--adapter", type=Path, action="append", default=[],
                       help="earlier generation's GGUF adapter to stack on (repeatable)")
    train.add_argument("--cache-dir", type=Path, help="dequantized-weights cache (default ~/.cache/nightschool/dequant)")
    bench = commands.add_parser("bench", help="trainer vs a plain transformers+peft loop; last line is JSON")
    bench.add_argument("--model", type=Path, help="GGUF to train (default: the embedded SmolLM2)")
    bench.add_argument("--data", type=Path, help="recall JSONL whose teach exchanges become SFT rows")
    bench.add_argument("--steps", type=int, default=4)
    bench.add_argument("--seq", type=int, default=256)
    bench.add_argument("--batch", type=int, default=4)
    bench.add_argument("--threads", type=int, default=0, help="0: the trainer's default, all cores but one")
    bench.add_argument("--cache-dir", type=Path)
    return parser.parse_args(argv)


def train(args: argparse.Namespace, stop: StopSignal, reporter: Reporter) -> int:
    """Runs one generation's training; every outcome ends in one progress line and an exit code."""
    try:
        config = load_config(args.config)
        dataset = read_dataset(args.data)
        os.environ["OMP_NUM_THREADS"] = str(config.resolved_threads())
        from trainer.train import METRICS_FILE, run  # torch loads here, after the cheap checks

        metrics = run(args.model, dataset, args.run_dir, config, args.adapter, args.cache_dir, stop, reporter)
        reporter.emit("done", loss=metrics["final_loss"], message=str(args.run_dir / METRICS_FILE))
        return EXIT_DONE
    except Interrupted:
        reporter.emit("interrupted", message=f"checkpoint kept in {args.run_dir}; run again to resume")
        return EXIT_INTERRUPTED
    except (BadInput, ModelFileError) as err:
        reporter.emit("error", message=str(err))
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:  # noqa: BLE001 - the app gets a line, the log gets the traceback
        reporter.emit("error", message=f"{type(err).__name__}: {err}")
        traceback.print_exc()
        return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """Entry point; SIGTERM/SIGINT are caught from the first moment so any phase can stop cleanly."""
    stop = StopSignal()
    stop.install()
    reporter = Reporter()
    try:
        args = parse_args(argv)
        if args.command == "bench":
            from trainer.bench import bench

            bench(args)
            return EXIT_DONE
        return train(args, stop, reporter)
    except Interrupted:
        reporter.emit("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
