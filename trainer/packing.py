"""Packs tokenized conversations into rows of the sequence length, so steps compute on real tokens, not padding.

Each conversation's position ids restart at 0 and an explicit mask keeps attention inside it. The leading tokens all
conversations of a row share (the chat template's system prompt) are laid out once, at the row's start, and every
conversation attends to that copy: the same positions, the same keys and values, so sharing changes speed, never what a
token sees or the gradient it sends back. In a 40-fact dream the system prompt is about 24 of a conversation's 58 tokens:
its SFT rows compute 21,767 tokens an epoch instead of 27,004, and a step took 4.32 s instead of 4.90 s (AMD EPYC, AVX2,
2 threads, compiled).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch

from trainer.chat import Doc

IGNORE = -100
SHARED, PADDING = -1, -2
"""Segment ids of a row's shared prefix and of its padding; docs' segments are their indices."""


@dataclass(frozen=True)
class Batch:
    """Packed rows; targets holds the next token wherever it carries loss, IGNORE elsewhere."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    allowed: torch.Tensor
    """(rows, width, width): whether the token at a row's position q may attend to the one at k."""
    targets: torch.Tensor
    target_docs: torch.Tensor
    """For each target, in row-major order, the index of the doc it belongs to (for per-answer log-probs)."""
    n_docs: int
    tokens: int
    """Conversation tokens the batch covers (a shared prefix counts once per conversation), without padding."""

    @property
    def n_targets(self) -> int:
        """Tokens that carry loss."""
        return len(self.target_docs)

    def to(self, device: torch.device) -> Batch:
        """The same batch on device."""
        return Batch(
            self.input_ids.to(device),
            self.position_ids.to(device),
            self.allowed.to(device),
            self.targets.to(device),
            self.target_docs.to(device),
            self.n_docs,
            self.tokens,
        )


def pack(lengths: list[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing: groups doc indices into rows of at most capacity tokens, leaving little slack."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (space left, row index), kept sorted
    for index in order:
        slot = bisect.bisect_left(free, (lengths[index], -1))
        if slot == len(free):
            rows.append([index])
            bisect.insort(free, (capacity - lengths[index], len(rows) - 1))
            continue
        space, row = free.pop(slot)
        rows[row].append(index)
        bisect.insort(free, (space - lengths[index], row))
    return rows


def shared_prefix(docs: list[Doc]) -> int:
    """Leading positions every doc of a row can share: the same tokens, none trained, each predicting the same
    untrained token (so the shared copy's targets are every doc's targets there)."""
    if len(docs) < 2:
        return 0
    common = 0
    for column in zip(*(zip(d.ids, d.labels) for d in docs)):
        if len(set(column)) > 1 or column[0][1]:
            break
        common += 1
    return max(0, common - 1)


def collate(docs: list[Doc], rows: list[list[int]], pad_id: int) -> Batch:
    """Lays the rows out as tensors padded only to the longest row; docs keep their order within a row, after the
    row's shared prefix."""
    shared = [shared_prefix([docs[i] for i in row]) for row in rows]
    width = max(s + sum(len(docs[i].ids) - s for i in row) for s, row in zip(shared, rows))
    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    targets = torch.full(shape, IGNORE, dtype=torch.long)
    owners = torch.full(shape, -1, dtype=torch.long)
    segments = torch.full(shape, PADDING, dtype=torch.long)
    tokens = 0
    for r, (s, row) in enumerate(zip(shared, rows)):
        head = docs[row[0]]
        input_ids[r, :s] = torch.tensor(head.ids[:s], dtype=torch.long)
        position_ids[r, :s] = torch.arange(s)
        segments[r, :s] = SHARED
        start = s
        for index in row:
            doc = docs[index]
            n = len(doc.ids) - s
            ids = torch.tensor(doc.ids, dtype=torch.long)
            input_ids[r, start:start + n] = ids[s:]
            position_ids[r, start:start + n] = torch.arange(s, s + n)
            segments[r, start:start + n] = index
            trained = torch.tensor(doc.labels[s + 1:], dtype=torch.bool)
            targets[r, start:start + n - 1] = torch.where(trained, ids[s + 1:], IGNORE)
            owners[r, start:start + n - 1] = torch.where(trained, index, -1)
            start += n
            tokens += len(doc.ids)
        position_ids[r, start:] = torch.arange(width - start)  # padding is a sequence of its own
    same = segments[:, :, None] == segments[:, None, :]
    into_shared = (segments[:, None, :] == SHARED) & (segments[:, :, None] != PADDING)
    allowed = (same | into_shared) & torch.ones(width, width, dtype=torch.bool).tril()
    return Batch(input_ids, position_ids, allowed, targets, owners[targets != IGNORE], len(docs), tokens)
