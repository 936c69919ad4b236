"""Loads the bench formats (taught facts with probes; verifiable prompts) the same way the UI records them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop.jsonl import JsonlError, objects
from desktop.signals import Signals
from desktop.verifiers import SpecError, parse_spec


class ImportFormatError(ValueError):
    """A file that is not one of the known formats; the message names the file and line."""


def _rows(path: Path) -> list[dict[str, Any]]:
    try:
        return [row for _number, row in objects(path.read_text(encoding="utf-8"))]
    except JsonlError as err:
        raise ImportFormatError(f"'{path}' line {err.line}: {err.reason}.") from err


def _family(external_id: str) -> str:
    """Task ids like 'add-12' name their family before the last dash."""
    return external_id.rsplit("-", 1)[0] if "-" in external_id else external_id


def _validate(path: Path, rows: list[dict[str, Any]]) -> None:
    """Checks every line before anything is written, so a bad file imports nothing rather than half."""
    for number, row in enumerate(rows, start=1):
        if "teach" in row:
            if not any(isinstance(m, dict) and m.get("role") == "user" and m.get("content") for m in row["teach"]):
                raise ImportFormatError(f"'{path}' line {number}: 'teach' has no user message.")
        elif "prompt" in row and "verifier" in row:
            try:
                parse_spec(row["verifier"])
            except SpecError as err:
                raise ImportFormatError(f"'{path}' line {number}: {err}") from err
        else:
            raise ImportFormatError(
                f"'{path}' line {number} is neither a taught fact ('teach') nor a task ('prompt' + 'verifier')."
            )


def import_file(signals: Signals, path: Path) -> dict[str, int]:
    """Imports a recall-*.jsonl or verifiable-*.jsonl file; importing it again adds nothing twice."""
    rows = _rows(path)
    _validate(path, rows)
    counts = {"taught": 0, "probes": 0, "tasks": 0, "skipped": 0}
    conversation = None
    for number, row in enumerate(rows, start=1):
        external = f"{path.stem}:{row.get('id', number)}"
        if "teach" in row:
            if signals.db.execute("SELECT 1 FROM taught WHERE source = 'import' AND external_id = ?", (external,)).fetchone():
                counts["skipped"] += 1
                continue
            user = next(m["content"] for m in row["teach"] if m.get("role") == "user")
            answer = next((m["content"] for m in row["teach"] if m.get("role") == "assistant"), None)
            if conversation is None:
                conversation = signals.store.create_conversation(f"Taught from {path.name}")
            taught_id = signals.teach(conversation, user, answer, source="import", external_id=external)
            counts["taught"] += 1
            for probe in row.get("probes", []):
                signals.add_probe(taught_id, "probe", probe["question"], probe["expect"])
                counts["probes"] += 1
            for near in row.get("near_misses", []):
                signals.add_probe(taught_id, "near_miss", near["question"], near["forbid"])
                counts["probes"] += 1
        else:
            added = signals.add_task(row["prompt"], row["verifier"], row.get("split", "train"), path.stem,
                                     _family(str(row.get("id", ""))), external)
            counts["tasks" if added else "skipped"] += 1
    return counts
