"""Turns taught items into training rows and held-out questions: one sentence barely teaches a fact, paraphrases do.

The templates follow what worked in the prototypes (../shared/DESIGN.md): the teach exchange itself, a
"what did I just tell you?" follow-up, "what did I tell you about <subject>?", a reminder, "do you remember
what I said about <keyword>?", and the reverse question; answers restate the fact in the second person.
Near-misses ("what did I tell you about my cat?" after the dog) get an honest "you haven't told me".
Held-out questions use other wordings and are never trained on: they decide whether a dream learned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from desktop.evaluate import Question
from desktop.memory import STOPWORDS
from desktop.signals import acknowledge

_SUBJECT = re.compile(
    r"\b(?:my|our)\s+((?:[a-z-]+\s+){0,2}?[a-z-]+?)(?:'s)?\s+(?:is|are|was|were|has|have|had|[a-z]+s)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
_QUOTED = re.compile(r"['\"‘“]([^'\"’”]{2,40})['\"’”]")
FALLBACK_WORD_LENGTH = 7
MIN_CONTENT_LENGTH = 4
OTHER_SUBJECTS = ("cat", "neighbour", "best friend", "boss", "car", "sister", "doctor", "favourite film")


@dataclass(frozen=True)
class Fact:
    """A taught item as the dream sees it."""

    item_id: int
    text: str
    acknowledgement: str


def restate(text: str) -> str:
    """The fact in the second person, as a sentence: "Your dog is called Biscuit."."""
    sentence = acknowledge(text).removeprefix("Noted: ")
    return sentence[0].upper() + sentence[1:]


def subject(text: str) -> str | None:
    """What the fact is about, when it says "my X is …" ("dog", "billing rewrite project")."""
    match = _SUBJECT.search(text)
    return match.group(1).lower() if match else None


def keywords(text: str) -> list[str]:
    """Distinctive words that must come back: quoted, capitalised mid-sentence or with digits; else long words."""
    words = _WORD.findall(text)
    quoted = [q.strip() for q in _QUOTED.findall(text)]
    strong = quoted + [w for i, w in enumerate(words)
                       if w.strip("'") not in quoted and ((i > 0 and w[0].isupper()) or any(c.isdigit() for c in w))]
    if strong:
        return [w.strip("'") for w in strong]
    about = set((subject(text) or "").split())
    return [w for w in words if len(w) >= FALLBACK_WORD_LENGTH and w.lower() not in STOPWORDS | about]


def expected(fact_text: str, question: str) -> tuple[str, ...]:
    """The keywords an answer must bring that the question does not already contain."""
    asked = question.lower()
    return tuple(word for word in keywords(fact_text) if word.lower() not in asked)


def _others(fact_subject: str | None, count: int, offset: int) -> list[str]:
    pool = [other for other in OTHER_SUBJECTS if other != fact_subject]
    return [pool[(offset + i) % len(pool)] for i in range(count)]


def training_rows(fact: Fact, near_misses: int = 1) -> list[dict]:
    """SFT rows (OpenAI-style messages) for one fact; none of them is a held-out question."""
    said = restate(fact.text)
    user = {"role": "user", "content": fact.text}
    ack = {"role": "assistant", "content": fact.acknowledgement}
    rows = [
        [user, ack],
        [user, ack, {"role": "user", "content": "What did I just tell you?"}, {"role": "assistant", "content": said}],
    ]
    topic = subject(fact.text)
    if topic:
        rows.append([{"role": "user", "content": f"What did I tell you about my {topic}?"}, {"role": "assistant", "content": said}])
        rows.append([{"role": "user", "content": f"Remind me, what do you know about my {topic}?"}, {"role": "assistant", "content": said}])
    for word in keywords(fact.text)[:2]:
        rows.append([{"role": "user", "content": f"Do you remember what I said about {word}?"},
                     {"role": "assistant", "content": f"Yes. {said}"}])
        rows.append([{"role": "user", "content": f"What do you know about {word}?"}, {"role": "assistant", "content": said}])
    for other in _others(topic, near_misses, fact.item_id):
        rows.append([{"role": "user", "content": f"What did I tell you about my {other}?"},
                     {"role": "assistant", "content": f"You haven't told me anything about your {other}."}])
    return [{"messages": messages} for messages in rows]


def content_words(text: str) -> list[str]:
    """Every word that carries meaning (no stopwords, not tiny): the fallback for what an answer must bring."""
    return [w for w in _WORD.findall(text) if len(w) >= MIN_CONTENT_LENGTH and w.lower() not in STOPWORDS]


def held_out(fact: Fact) -> tuple[list[Question], list[Question]]:
    """Probes (other wordings, must bring back what the question lacks) and near-misses (must not) to judge a dream."""
    topic = subject(fact.text)
    words = keywords(fact.text) or content_words(fact.text)
    about = f"my {topic}" if topic else (words[0] if words else None)
    probes = []
    for wording in ("Tell me what you remember about {}.", "What can you tell me about {}?"):
        question = wording.format(about) if about else ""
        must = expected(fact.text, question) or tuple(
            w for w in content_words(fact.text) if w.lower() not in question.lower()
        )
        if about and must:
            probes.append(Question(question, must, fact.item_id))
    other = _others(topic, 2, fact.item_id)[-1]
    near = [Question(f"Tell me what you remember about my {other}.", tuple(words), fact.item_id)] if words else []
    return probes, near


def replay_rows(prompts_and_answers: list[tuple[str, str]]) -> list[dict]:
    """The current generation's own answers to general prompts: rehearsing them holds what it already knew."""
    return [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": a}]}
            for p, a in prompts_and_answers]
