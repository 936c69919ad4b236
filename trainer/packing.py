"""Packs tokenized conversations into rows of the sequence length, so steps compute on real tokens, not padding.

Each conversation's position ids restart at 0; transformers reads that as a packed row and keeps attention
inside each conversation, so packing changes speed, never what a token can see.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch

from trainer.chat import Doc

IGNORE = -100


@dataclass(frozen=True)
class Batch:
    """Packed rows; targets holds the next token wherever it carries loss, IGNORE elsewhere."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    targets: torch.Tensor
    target_docs: torch.Tensor
    """For each target, in row-major order, the index of the doc it belongs to (for per-answer log-probs)."""
    n_docs: int
    tokens: int
    """Real (non-padding) tokens in the batch."""

    @property
    def n_targets(self) -> int:
        """Tokens that carry loss."""
        return len(self.target_docs)

    def to(self, device: torch.device) -> Batch:
        """The same batch on device."""
        return Batch(
            self.input_ids.to(device),
            self.position_ids.to(device),
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


def collate(docs: list[Doc], rows: list[list[int]], pad_id: int) -> Batch:
    """Lays the rows out as tensors padded only to the longest row; docs keep their order within a row."""
    width = max(sum(len(docs[i].ids) for i in row) for row in rows)
    shape = (len(rows), width)
    input_ids = torch.full(shape, pad_id, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    targets = torch.full(shape, IGNORE, dtype=torch.long)
    owners = torch.full(shape, -1, dtype=torch.long)
    tokens = 0
    for r, row in enumerate(rows):
        start = 0
        for index in row:
            doc = docs[index]
            n = len(doc.ids)
            ids = torch.tensor(doc.ids, dtype=torch.long)
            input_ids[r, start:start + n] = ids
            position_ids[r, start:start + n] = torch.arange(n)
            trained = torch.tensor(doc.labels[1:], dtype=torch.bool)
            targets[r, start:start + n - 1] = torch.where(trained, ids[1:], IGNORE)
            owners[r, start:start + n - 1] = torch.where(trained, index, -1)
            start += n
            tokens += n
        position_ids[r, start:] = torch.arange(width - start)  # padding is a sequence of its own
    return Batch(input_ids, position_ids, targets, owners[targets != IGNORE], len(docs), tokens)
