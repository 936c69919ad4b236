"""Turns the signals into the JSONL shapes TRL reads: SFT conversations, preference pairs, KTO singles."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from desktop.atomic import write_text_atomic
from desktop.session import ChatSession
from desktop.signals import Signals

FORMATS = ("sft", "preference", "kto")


def _judgements(signals: Signals) -> dict[int, bool]:
    """Answer id → good or bad: all checks passed / any failed, and a person's mark overrides a verifier."""
    verdicts: dict[int, dict[str, str]] = defaultdict(dict)
    for row in signals.db.query(
        "SELECT message_id, spec_json, value FROM signals WHERE kind = 'verification' AND excluded = 0 ORDER BY id"
    ):
        verdicts[row["message_id"]][row["spec_json"]] = row["value"]
    judged = {
        mid: all(value == "passed" for value in latest.values())
        for mid, latest in verdicts.items()
        if any(value in ("passed", "failed") for value in latest.values())
    }
    for mark in signals.marks():
        judged[mark["message_id"]] = mark["value"] == "correct"
    return judged


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def build_rows(signals: Signals, include_taught: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Every trainable row, from items not excluded; probes and near-misses are never included.

    A dream builds its own rows for taught items (include_taught=False) and takes the rest from here.
    """
    store = signals.store
    session = ChatSession(store)
    judged = _judgements(signals)
    corrections = signals.corrections()
    corrected = {c["message_id"] for c in corrections} | {c["correction_id"] for c in corrections}

    def prompt(message: dict[str, Any]) -> list[dict[str, str]]:
        return session.prompt_for(message["conversation_id"], message["parent_id"])

    sft = [
        {"messages": [{"role": "user", "content": t["text"]}, *_assistant(t["acknowledgement"])]}
        for t in signals.taught_items(include_excluded=False)
        if include_taught
    ]
    preference: list[dict[str, Any]] = []
    paired: set[int] = set()
    for c in corrections:
        original = store.message(c["message_id"])
        sft.append({"messages": prompt(original) + _assistant(c["corrected"])})
        preference.append({"prompt": prompt(original), "chosen": _assistant(c["corrected"]), "rejected": _assistant(c["original"])})
        paired.add(c["message_id"])
    for mid, good in judged.items():
        if not good or mid in corrected:
            continue
        answer = store.message(mid)
        sft.append({"messages": prompt(answer) + _assistant(answer["content"])})
        for other in store.siblings(mid):
            if other["id"] == mid or other["role"] != "assistant" or other["author"] != "model" or judged.get(other["id"]):
                continue
            preference.append({"prompt": prompt(answer), "chosen": _assistant(answer["content"]), "rejected": _assistant(other["content"])})
            paired.update((mid, other["id"]))
    kto = []
    for mid, good in judged.items():
        if mid not in paired and mid not in corrected:
            answer = store.message(mid)
            kto.append({"prompt": prompt(answer), "completion": _assistant(answer["content"]), "label": good})
    return {"sft": sft, "preference": preference, "kto": kto}


def export(signals: Signals, fmt: str, out: Path) -> dict[str, int]:
    """Writes FORMAT.jsonl files into the folder out (or one file when out ends in .jsonl); returns row counts."""
    formats = FORMATS if fmt == "all" else (fmt,)
    if any(name not in FORMATS for name in formats):
        raise ValueError(f"format is one of {FORMATS + ('all',)}, not {fmt!r}")
    rows = build_rows(signals)
    single_file = fmt != "all" and out.suffix == ".jsonl"
    for name in formats:
        target = out if single_file else out / f"{name}.jsonl"
        write_text_atomic(target, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows[name]))
    return {name: len(rows[name]) for name in formats}
