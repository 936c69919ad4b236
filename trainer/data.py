"""Reads the training signals `nightschool export` writes, in the JSONL shapes TRL reads, and refuses bad rows by name."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from desktop.engine import ChatMessage
from desktop.jsonl import JsonlError, objects
from trainer.errors import BadInput

SFT_FILE = "sft.jsonl"
PREFERENCE_FILE = "preference.jsonl"
KTO_FILE = "kto.jsonl"
ROLES = ("system", "user", "assistant")


class DataError(BadInput):
    """A data file or row the trainer cannot use; the message names the file and line."""


@dataclass(frozen=True)
class Preference:
    """A prompt with a better and a worse answer (DPO)."""

    prompt: list[ChatMessage]
    chosen: list[ChatMessage]
    rejected: list[ChatMessage]


@dataclass(frozen=True)
class Mark:
    """A prompt with one answer marked good or bad, where no pair exists (KTO)."""

    prompt: list[ChatMessage]
    completion: list[ChatMessage]
    desirable: bool


@dataclass
class Dataset:
    """Everything one run trains on; digest identifies the files' contents for resuming."""

    folder: Path
    sft: list[list[ChatMessage]] = field(default_factory=list)
    preference: list[Preference] = field(default_factory=list)
    kto: list[Mark] = field(default_factory=list)
    digest: str = ""

    def counts(self) -> dict[str, int]:
        """Rows per objective, for progress and metrics."""
        return {"sft": len(self.sft), "preference": len(self.preference), "kto": len(self.kto)}


def _messages(value: object, where: str, default_role: str) -> list[ChatMessage]:
    """A message list, or a plain string taken as one message of default_role."""
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: expected a non-empty list of messages or a string")
    messages: list[ChatMessage] = []
    for item in value:
        if not isinstance(item, dict) or item.get("role") not in ROLES or not isinstance(item.get("content"), str):
            raise DataError(f"{where}: each message needs a role ({'/'.join(ROLES)}) and string content, got {item!r}")
        messages.append({"role": item["role"], "content": item["content"]})
    return messages


def _answer(value: object, where: str) -> list[ChatMessage]:
    """A completion: assistant messages only."""
    messages = _messages(value, where, "assistant")
    if any(m["role"] != "assistant" for m in messages):
        raise DataError(f"{where}: a completion holds assistant messages only")
    return messages


def _sft(row: dict, where: str) -> list[ChatMessage]:
    """A conversation with at least one answer to learn."""
    messages = _messages(row.get("messages"), f"{where} 'messages'", "user")
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: no assistant message to learn from")
    return messages


def _preference(row: dict, where: str) -> Preference:
    """TRL's preference row: prompt, chosen, rejected."""
    return Preference(
        _messages(row.get("prompt"), f"{where} 'prompt'", "user"),
        _answer(row.get("chosen"), f"{where} 'chosen'"),
        _answer(row.get("rejected"), f"{where} 'rejected'"),
    )


def _mark(row: dict, where: str) -> Mark:
    """TRL's unpaired preference row: prompt, completion, label."""
    if not isinstance(row.get("label"), bool):
        raise DataError(f"{where}: 'label' must be true or false")
    return Mark(
        _messages(row.get("prompt"), f"{where} 'prompt'", "user"),
        _answer(row.get("completion"), f"{where} 'completion'"),
        row["label"],
    )


PARSERS = {SFT_FILE: _sft, PREFERENCE_FILE: _preference, KTO_FILE: _mark}


def read_dataset(folder: Path) -> Dataset:
    """Reads whichever of sft.jsonl, preference.jsonl and kto.jsonl the folder holds (at least one)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder '{folder}' does not exist")
    present = [name for name in PARSERS if (folder / name).is_file()]
    if not present:
        raise DataError(f"data folder '{folder}' holds none of {', '.join(PARSERS)}")
    rows: dict[str, list] = {name: [] for name in PARSERS}
    digest = hashlib.sha256()
    for name in present:
        path = folder / name
        raw = path.read_bytes()
        digest.update(name.encode() + b"\0" + raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err})") from err
        try:
            for number, row in objects(text):
                rows[name].append(PARSERS[name](row, f"{path}:{number}"))
        except JsonlError as err:
            raise DataError(f"{path}:{err.line}: {err.reason}") from err
    return Dataset(folder, rows[SFT_FILE], rows[PREFERENCE_FILE], rows[KTO_FILE], digest.hexdigest()[:32])
