"""Short-term memory: the few taught items and corrections most relevant to a question, put into its prompt."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from desktop.engine import ChatMessage

STOPWORDS = frozenset(
    """a an the and or but if of to in on at for from by with about as is are was were be been being am do does did
    have has had i me my mine we us our you your yours he him his she her it its they them their what which who whom
    whose when where why how that this these those there here can could would should will shall may might must not no
    yes so than then too very just also please tell know remember said told say called name named""".split()
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
MEMORY_HEADER = "Things I told you earlier (use them if they help):"
MIN_STEM = 3


@dataclass(frozen=True)
class MemoryItem:
    """One thing the assistant should keep in mind: a taught fact, or a question with its corrected answer."""

    text: str
    source: str
    source_id: int


def stem(word: str) -> str:
    """A crude stem, the same for every form, so "builds" meets "build" and "climbing" meets "climb"."""
    if word.endswith("s") and not word.endswith("ss") and len(word) > MIN_STEM:
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= MIN_STEM:
            word = word[: -len(suffix)]
            break
    return word.removesuffix("e") if len(word) > MIN_STEM else word


def words(text: str) -> list[str]:
    """Stems of the content words, lower-cased, without the possessive 's (so "dog's" meets "dog")."""
    found = (w.removesuffix("'s") for w in _WORD.findall(text.lower()))
    return [stem(w) for w in found if w not in STOPWORDS]


def relevant(question: str, items: Sequence[MemoryItem], limit: int) -> list[MemoryItem]:
    """The items sharing the rarest words with the question (IDF-weighted overlap), best first."""
    if not items or limit <= 0:
        return []
    bags = [set(words(item.text)) for item in items]
    frequency = Counter(word for bag in bags for word in bag)
    wanted = set(words(question))
    scores = [
        sum(math.log(1 + len(items) / frequency[word]) for word in wanted & bag) for bag in bags
    ]
    ranked = sorted(range(len(items)), key=lambda i: scores[i], reverse=True)
    return [items[i] for i in ranked[:limit] if scores[i] > 0]


def with_memory(messages: Sequence[ChatMessage], items: Sequence[MemoryItem]) -> list[ChatMessage]:
    """Prepends the items to the last user turn only, so the cached prefix of the conversation stays reusable."""
    if not items:
        return list(messages)
    notes = "\n".join(f"- {item.text}" for item in items)
    last = messages[-1]
    return [*messages[:-1], {"role": last["role"], "content": f"{MEMORY_HEADER}\n{notes}\n\n{last['content']}"}]
