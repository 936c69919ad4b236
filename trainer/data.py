"""Reads the training signals `nightschool export` writes, in the JSONL shapes TRL reads, and refuses bad rows by name.

Three files come from dreams rather than from marks: anchor.jsonl (the current generation's own answers, whose
whole next-token distribution the candidate must keep), rollouts.jsonl (sampled answers with verifier
rewards, grouped per prompt, for GRPO) and unlikely.jsonl (near questions answered with a taught value that
must not come there, for unlikelihood).
"""

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
ANCHOR_FILE = "anchor.jsonl"
ROLLOUT_FILE = "rollouts.jsonl"
UNLIKELY_FILE = "unlikely.jsonl"
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


@dataclass(frozen=True)
class Rollout:
    """One sampled answer to a prompt, with its reward and group-relative advantage (GRPO)."""

    prompt: list[ChatMessage]
    completion: list[ChatMessage]
    reward: float
    advantage: float


@dataclass(frozen=True)
class _Sampled:
    prompt: list[ChatMessage]
    completion: list[ChatMessage]
    reward: float
    group: str


def advantages(rewards: list[float]) -> list[float] | None:
    """Each reward minus its group's mean, over the group's standard deviation; None when all are equal (no signal)."""
    mean = sum(rewards) / len(rewards)
    spread = (sum((r - mean) ** 2 for r in rewards) / len(rewards)) ** 0.5
    if spread < 1e-6:
        return None
    return [(r - mean) / spread for r in rewards]


def rollouts(sampled: list[_Sampled]) -> tuple[list[Rollout], int]:
    """Rollouts of the groups whose answers scored differently, and how many groups were skipped as uninformative."""
    groups: dict[str, list[_Sampled]] = {}
    for row in sampled:
        groups.setdefault(row.group, []).append(row)
    kept, skipped = [], 0
    for rows in groups.values():
        scaled = advantages([r.reward for r in rows])
        if scaled is None:
            skipped += 1
            continue
        kept += [Rollout(r.prompt, r.completion, r.reward, a) for r, a in zip(rows, scaled)]
    return kept, skipped


@dataclass(frozen=True)
class Avoided:
    """A conversation whose last answer must not go on with any of avoid where it first appears (taught values in a near
    question's answer)."""

    messages: list[ChatMessage]
    avoid: list[str]


@dataclass
class Dataset:
    """Everything one run trains on; digest identifies the files' contents for resuming."""

    folder: Path
    sft: list[list[ChatMessage]] = field(default_factory=list)
    preference: list[Preference] = field(default_factory=list)
    kto: list[Mark] = field(default_factory=list)
    anchor: list[list[ChatMessage]] = field(default_factory=list)
    rollouts: list[Rollout] = field(default_factory=list)
    unlikely: list[Avoided] = field(default_factory=list)
    skipped_groups: int = 0
    digest: str = ""

    def counts(self) -> dict[str, int]:
        """Rows per objective, for progress and metrics."""
        return {"sft": len(self.sft), "preference": len(self.preference), "kto": len(self.kto),
                "anchor": len(self.anchor), "rollouts": len(self.rollouts), "unlikely": len(self.unlikely),
                "skipped_groups": self.skipped_groups}


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


def _sampled(row: dict, where: str) -> _Sampled:
    """A sampled answer: prompt, completion, its reward and the group (prompt) it was sampled for."""
    reward = row.get("reward")
    if isinstance(reward, bool) or not isinstance(reward, (int, float)):
        raise DataError(f"{where}: 'reward' must be a number")
    if not isinstance(row.get("group"), (str, int)):
        raise DataError(f"{where}: 'group' must name the prompt the answer was sampled for")
    return _Sampled(
        _messages(row.get("prompt"), f"{where} 'prompt'", "user"),
        _answer(row.get("completion"), f"{where} 'completion'"),
        float(reward),
        str(row["group"]),
    )


def _avoided(row: dict, where: str) -> Avoided:
    """A conversation and the words its last answer must not reach."""
    messages = _sft(row, where)
    avoid = row.get("avoid")
    if (messages[-1]["role"] != "assistant" or not isinstance(avoid, list) or not avoid
            or not all(isinstance(word, str) and word and word in messages[-1]["content"] for word in avoid)):
        raise DataError(f"{where}: 'avoid' must list strings inside the last message, an answer")
    return Avoided(messages, avoid)


PARSERS = {SFT_FILE: _sft, PREFERENCE_FILE: _preference, KTO_FILE: _mark, ANCHOR_FILE: _sft, ROLLOUT_FILE: _sampled,
           UNLIKELY_FILE: _avoided}


def read_dataset(folder: Path) -> Dataset:
    """Reads whichever of the objectives' files the folder holds (at least one)."""
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
    kept, skipped = rollouts(rows[ROLLOUT_FILE])
    return Dataset(folder, rows[SFT_FILE], rows[PREFERENCE_FILE], rows[KTO_FILE], rows[ANCHOR_FILE], kept,
                   rows[UNLIKELY_FILE], skipped, digest.hexdigest()[:32])
