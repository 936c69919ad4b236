"""Command-line subcommands for signals: verify, mark, correct, teach, taught, check, export, import, inbox."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from desktop.boot import boot
from desktop.signals import Signals
from desktop.verifiers import SpecError, verify

EXIT_BAD_INPUT = 2


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Registers the signal subcommands on the main parser."""
    p = sub.add_parser("verify", help="run one verifier on one answer; prints a JSON line last")
    p.add_argument("--spec", required=True, help='e.g. \'{"kind": "numeric", "answer": 42}\'')
    p.add_argument("--answer", required=True, metavar="FILE|-", help="the answer text, from a file or - for stdin")
    p = sub.add_parser("mark", help="mark an answer correct or incorrect (none undoes)")
    p.add_argument("message", type=int)
    p.add_argument("value", choices=("correct", "incorrect", "none"))
    p.add_argument("--reason", default="")
    p = sub.add_parser("correct", help="store the right answer for an answer (the original is kept)")
    p.add_argument("message", type=int)
    p.add_argument("text")
    p = sub.add_parser("teach", help="tell the assistant something to remember")
    p.add_argument("text")
    p.add_argument("--conversation", type=int)
    p = sub.add_parser("taught", help="list, edit, exclude, include or delete taught items")
    p.add_argument("action", nargs="?", default="list", choices=("list", "edit", "exclude", "include", "delete"))
    p.add_argument("id", nargs="?", type=int)
    p.add_argument("text", nargs="?")
    p = sub.add_parser("check", help="attach a verifier to an answer's question and run it on the answer")
    p.add_argument("message", type=int)
    p.add_argument("--spec", required=True)
    p = sub.add_parser("export", help="write training data as JSONL in the shapes TRL reads")
    p.add_argument("--format", default="all", choices=("sft", "preference", "kto", "all"))
    p.add_argument("out", type=Path)
    p = sub.add_parser("import", help="load a recall-*.jsonl or verifiable-*.jsonl file")
    p.add_argument("file", type=Path)
    sub.add_parser("inbox", help="what the next dream will learn from, with counts")


COMMANDS = ("verify", "mark", "correct", "teach", "taught", "check", "export", "import", "inbox")


def run(args: argparse.Namespace) -> int:
    """Dispatches one signal subcommand; bad input is a message and exit code 2, never a traceback."""
    if args.command == "verify":
        return _verify(args)
    state = boot()
    for warning in state.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    signals = Signals(state.store)
    try:
        return HANDLERS[args.command](signals, args)
    except (KeyError, ValueError, SpecError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _verify(args: argparse.Namespace) -> int:
    try:
        spec = json.loads(args.spec)
        answer = sys.stdin.read() if args.answer == "-" else Path(args.answer).read_text(encoding="utf-8")
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    result = verify(spec, answer)
    print(json.dumps(result.to_json()))
    return 0 if result.status != "error" else EXIT_BAD_INPUT


def _mark(signals: Signals, args: argparse.Namespace) -> int:
    if args.value == "none":
        signals.unmark(args.message)
    else:
        signals.mark(args.message, args.value, args.reason)
    print(json.dumps({"message": args.message, "mark": signals.current_mark(args.message) and args.value}))
    return 0


def _correct(signals: Signals, args: argparse.Namespace) -> int:
    print(json.dumps({"message": args.message, "correction": signals.correct(args.message, args.text)}))
    return 0


def _teach(signals: Signals, args: argparse.Namespace) -> int:
    cid = args.conversation or signals.store.create_conversation("Taught")
    taught_id = signals.teach(cid, args.text)
    print(json.dumps({"taught": taught_id, "acknowledgement": signals.taught_item(taught_id)["acknowledgement"]}))
    return 0


def _taught(signals: Signals, args: argparse.Namespace) -> int:
    if args.action != "list" and args.id is None:
        raise ValueError(f"'taught {args.action}' needs an item id")
    if args.action == "edit":
        if not args.text:
            raise ValueError("'taught edit' needs the new text")
        signals.edit_taught(args.id, args.text)
    elif args.action in ("exclude", "include"):
        signals.set_taught_excluded(args.id, args.action == "exclude")
    elif args.action == "delete":
        signals.delete_taught(args.id)
    for item in signals.taught_items():
        flag = " (excluded)" if item["excluded"] else ""
        print(f"{item['id']:>4}  {item['text']}{flag}")
    return 0


def _check(signals: Signals, args: argparse.Namespace) -> int:
    answer = signals.store.message(args.message)
    spec = json.loads(args.spec)
    signals.add_check(answer["parent_id"], spec)
    result = verify(spec, answer["content"])
    signals.record_verification(args.message, spec, result)
    print(json.dumps(result.to_json()))
    return 0


def _export(signals: Signals, args: argparse.Namespace) -> int:
    from desktop.export import export

    print(json.dumps(export(signals, args.format, args.out)))
    return 0


def _import(signals: Signals, args: argparse.Namespace) -> int:
    from desktop.importer import import_file

    print(json.dumps(import_file(signals, args.file)))
    return 0


def _inbox(signals: Signals, _args: argparse.Namespace) -> int:
    from desktop.inbox import learning_inbox

    print(json.dumps(learning_inbox(signals)["counts"]))
    return 0


HANDLERS = {"mark": _mark, "correct": _correct, "teach": _teach, "taught": _taught, "check": _check,
            "export": _export, "import": _import, "inbox": _inbox}
