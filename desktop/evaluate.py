"""Measures a model generation the way the app serves it: recall of taught items, leaks, retention, perplexity."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from desktop.engine import Engine, SamplingParams
from desktop.memory import MemoryItem, relevant, with_memory

GREEDY = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=40)
"""Probes are answered greedily and briefly: the fact, not an essay, is what is scored."""


@dataclass(frozen=True)
class Question:
    """A question and the strings that decide it: expected (probes, retention) or forbidden (near-misses)."""

    question: str
    strings: tuple[str, ...]
    item_id: int | None = None


@dataclass
class Score:
    """Fractions in 0..1 plus what each question got, so a report can show what changed."""

    fraction: float
    passed: list[bool] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)


def mentions(answer: str, strings: Sequence[str]) -> bool:
    """Whole-word, case-insensitive match, so "no" does not match "Noted"."""
    return any(re.search(rf"(?<!\w){re.escape(s)}(?!\w)", answer, re.IGNORECASE) for s in strings)


def ask(engine: Engine, question: str, memory: Sequence[MemoryItem] = (), memory_limit: int = 0) -> str:
    """One question in a fresh conversation, with short-term memory if given."""
    messages = [{"role": "user", "content": question}]
    if memory_limit > 0:
        messages = with_memory(messages, relevant(question, memory, memory_limit))
    return engine.chat(messages, GREEDY).text


def score(engine: Engine, questions: Sequence[Question], memory: Sequence[MemoryItem] = (),
          memory_limit: int = 0) -> Score:
    """Fraction of answers that mention one of their strings: recall for probes, leaks for near-misses."""
    result = Score(0.0)
    for question in questions:
        answer = ask(engine, question.question, memory, memory_limit)
        result.answers.append(answer)
        result.passed.append(mentions(answer, question.strings))
    result.fraction = sum(result.passed) / len(result.passed) if result.passed else 0.0
    return result
