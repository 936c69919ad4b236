"""Turns taught items into training rows and held-out questions: one sentence barely teaches a fact, paraphrases do.

The templates follow what worked in the prototypes (../shared/DESIGN.md): the teach exchange itself, a
"what did I just tell you?" follow-up, "what did I tell you about <subject>?", a reminder, a fill-in of the
sentence up to its first distinctive word, "do you remember what I said about <keyword>?", and the reverse
question, and direct questions built from the sentence ("Where does my sister live?"); answers restate the
fact in the second person. Questions about subjects nothing taught mentions get an honest "you haven't told me" where
they ask what was told ("what did I tell you about my cat?"); questions in the fact's own frame about near subjects
("Where does my brother live?") become unlikelihood rows (leak_rows): the taught value must not come where it would
start ("Your brother lives in" must not go on "Tromso"), and nothing else about their answers is taught.
Held-out questions use other wordings and are never trained on: they decide whether a dream learned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from desktop.evaluate import Question
from desktop.memory import STOPWORDS, MemoryItem, relevant, with_memory
from desktop.signals import acknowledge

_SUBJECT = re.compile(
    r"\b(?:my|our)\s+((?:[a-z-]+(?:'s)?\s+){0,2}?[a-z-]+?)(?:'s)?\s+(?:is|are|was|were|has|have|had|[a-z]+s)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
_TOKEN = re.compile(r"\w+")
"""Words as whole-word matching sees them ("grandfather's" holds "grandfather")."""
_QUOTED = re.compile(r"['\"‘“]([^'\"’”]{2,40})['\"’”]")
FALLBACK_WORD_LENGTH = 7
MIN_CONTENT_LENGTH = 4
MIN_FILL_IN_WORDS = 3
NAMING_VERBS = ("called", "named", "codenamed")
ARTICLES = ("a", "an", "the")
IRREGULAR_PAST = {"grew": "grow", "went": "go", "made": "make", "took": "take", "got": "get", "came": "come", "saw": "see",
                  "left": "leave", "met": "meet", "bought": "buy", "began": "begin", "wrote": "write"}
"""Past forms whose base form is certain; a regular "-ed" is not (lived → live, worked → work), so those stay unasked."""
PAST_TENSE = re.compile(rf"(?:ed|was|were|had|{'|'.join(IRREGULAR_PAST)})$", re.IGNORECASE)
_NAME_OF = re.compile(r"(.+)'s name$")
OTHER_SUBJECTS = ("cat", "neighbour", "best friend", "boss", "brother", "car", "sister", "doctor", "colleague",
                  "favourite film", "uncle", "cousin", "flatmate", "laptop", "favourite band")
"""Whom near-miss questions ask about; those sharing a word with anything taught are left out (_untold)."""
PEOPLE = ("sister", "brother", "mother", "father", "partner", "neighbour", "son", "daughter", "colleague", "best friend")
"""Whose a personal fact could be instead ("my partner's favourite colour", "my father grew up in …")."""
RELATED = (
    PEOPLE + ("grandfather", "grandmother", "cousin", "uncle", "aunt"),
    ("team lead", "boss", "manager", "mentor", "landlord", "dentist", "doctor"),
    ("dog", "cat", "goldfish", "rabbit", "parrot", "hamster"),
    ("tea", "coffee", "juice", "beer", "wine"),
    ("car", "bike", "boat", "motorbike", "van"),
    ("backend", "frontend", "website", "database", "repository", "server", "app"),
    ("standup", "lunch", "retro", "planning meeting", "code review"),
    ("client", "supplier", "customer", "competitor", "investor"),
    ("colour", "food", "film", "book", "song", "band", "herb"),
    ("shoe size", "hat size", "shirt size", "ring size"),
    ("project", "team", "product", "service"),
)
"""Subjects a small model confuses because they mean nearly the same: where a taught value leaks ("my brother" after
"my sister", "my favourite coffee" after "my favourite tea")."""


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
    """Distinctive words that must come back: quoted, capitalised mid-sentence (but not "The" of "The Crux") or with
    digits; else long words."""
    words = _WORD.findall(text)
    quoted = [q.strip() for q in _QUOTED.findall(text)]
    strong = quoted + [w for i, w in enumerate(words)
                       if w.strip("'") not in quoted and w.lower() not in STOPWORDS
                       and ((i > 0 and w[0].isupper()) or any(c.isdigit() for c in w))]
    if strong:
        return [w.strip("'") for w in strong]
    about = set((subject(text) or "").split())
    return [w for w in words if len(w) >= FALLBACK_WORD_LENGTH and w.lower() not in STOPWORDS | about]


def expected(fact_text: str, question: str) -> tuple[str, ...]:
    """The keywords an answer must bring that the question does not already contain; else its content words."""
    asked = question.lower()
    return (tuple(word for word in keywords(fact_text) if word.lower() not in asked)
            or tuple(word for word in content_words(fact_text) if word.lower() not in asked))


def owner(text: str, topic: str) -> str:
    """Whose the subject is, as the person said it ("my" or "our")."""
    return "our" if re.search(rf"\bour\s+{re.escape(topic)}", text, re.IGNORECASE) else "my"


def fill_in(text: str) -> str | None:
    """The fact cut just before a distinctive word (the first that leaves a few words) and any article before it, as a
    prompt to complete ("My dog is called …", "I go climbing at a gym called …")."""
    for word in keywords(text):
        cut = re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}", text)
        words = text[:cut.start()].rstrip(" '\"‘“,").split() if cut else []
        if words[-1:] and words[-1].lower() in ARTICLES:
            words.pop()
        if len(words) >= MIN_FILL_IN_WORDS:
            return " ".join(words)
    return None


def _until_article(words: list[str]) -> list[str]:
    """The words before the first article: "ride a green" → "ride"."""
    cut = next((i for i, w in enumerate(words) if w.lower() in ARTICLES), len(words))
    return words[:cut]


def _base(verb: str) -> str:
    """Third person to base form, for "does my sister live": lives → live, goes → go, plays → play."""
    lower = verb.lower()
    if lower.endswith(("ches", "shes", "sses", "xes", "oes")):
        return verb[:-2]
    return verb[:-1] if lower.endswith("s") and not lower.endswith("ss") else verb


def direct_questions(text: str) -> list[str]:
    """Questions in the shape people ask them ("Where does my sister live?", "What do I ride?"), from the sentence up to
    its first distinctive word; only present-tense statements about "my/our X", "I" or "we" are turned."""
    head = fill_in(text) or ""
    words = head.split()
    if len(words) < 2:
        return []
    topic = subject(text)
    first = words[0].lower()
    if topic and first in ("my", "our") and " ".join(words[1:]).lower().startswith(topic):
        whose = f"{first} {topic}"
        rest = words[1 + len(topic.split()):]
        if not rest:
            return []
        if rest[0].lower() in ("is", "are"):
            be, after = rest[0].lower(), _until_article(rest[1:])
            named = _NAME_OF.match(topic)
            if named:
                return [f"Who {be} {first} {named.group(1)}?", f"What {be} {first} {named.group(1)} called?"]
            if after and after[-1].lower() in NAMING_VERBS:
                return [f"What {be} {whose} called?", f"What is the name of {whose}?"]
            if after and after[0].lower() in ("at", "on"):
                return [f"When {be} {whose}?"]
            if after:
                return [f"What {be} {whose} {' '.join(after)}?"]
            name = keywords(text)[:1]
            return [f"Who {be} {whose}?"] if name and name[0][0].isupper() and not name[0].isupper() else []
        verb, after = rest[0], _until_article(rest[1:])
        if PAST_TENSE.search(verb):
            return []
        asked = [f"What does {whose} {_base(verb)} {' '.join(after)}?".replace(" ?", "?")]
        if after and after[-1].lower() in ("in", "at"):
            asked.append(f"Where does {whose} {_base(verb)}?")
        return asked
    if first in ("i", "we"):
        person = "I" if first == "i" else "we"
        verb, after = words[1], _until_article(words[2:])
        if verb.lower() in ("am", "are"):
            return [f"What {verb.lower()} {person} {' '.join(after)}?".replace(" ?", "?")] if after else []
        if verb.lower() in ("cannot", "can't"):
            return [f"What can {person} not {' '.join(after)}?".replace(" ?", "?")] if after else []
        if verb.lower() == "do" and after[:1] == ["not"]:
            return [f"What do {person} not {' '.join(after[1:])}?"] if after[1:] else []
        base = IRREGULAR_PAST.get(verb.lower())
        if base and after and after[-1].lower() in ("in", "at"):
            return [f"Where did {person} {' '.join([base, *after[:-1]])}?"]
        if base:
            return [f"What did {person} {base} {' '.join(after)}?".replace(" ?", "?")]
        if PAST_TENSE.search(verb) or verb.lower() in ("do", "does", "can", "will", "have", "had"):
            return []
        return [f"What do {person} {verb} {' '.join(after)}?".replace(" ?", "?")]
    return []


def told_words(texts: Iterable[str]) -> frozenset[str]:
    """Every word of what was taught, lower-cased, counted once per dream rather than once per fact."""
    return frozenset(word for text in texts for word in _TOKEN.findall(text.lower()))


def _untold(fact: Fact, told: frozenset[str]) -> list[str]:
    """Subjects sharing no word with this fact or anything else taught: "you haven't told me" about them is true, and
    does not spill onto what was told (denying the favourite film made a dream deny the taught favourite colour)."""
    said = told | told_words([fact.text])
    return [other for other in OTHER_SUBJECTS if said.isdisjoint(other.split())]


def _others(fact: Fact, told: frozenset[str], count: int) -> list[str]:
    """Subjects the fact is not about, for near-misses; training takes them from the fact's id on."""
    pool = _untold(fact, told)
    return [pool[(fact.item_id + i) % len(pool)] for i in range(min(count, len(pool) - 1))]


def _held_out_other(fact: Fact, told: frozenset[str]) -> str | None:
    """The one subject training's near-misses reach last (the one before the fact's id): held-out near-misses use it."""
    pool = _untold(fact, told)
    return pool[(fact.item_id - 1) % len(pool)] if pool else None


def _resubject(text: str, topic: str, other: str) -> str:
    """text with its first mention of topic replaced by other."""
    return re.sub(rf"\b{re.escape(topic)}\b", other, text, count=1, flags=re.IGNORECASE)


def _third_person(verb: str) -> str:
    """"am" → "is", "go" → "goes", "ride" → "rides"; modal and past forms stay."""
    lower = verb.lower()
    irregular = {"am": "is", "have": "has", "do": "does", "go": "goes"}
    if lower in irregular:
        return irregular[lower]
    if lower in ("can", "cannot", "can't", "will", "won't", "must", "should") or PAST_TENSE.search(lower):
        return verb
    if lower.endswith(("s", "sh", "ch", "x", "o")):
        return verb + "es"
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _moved(text: str, topic: str | None, other: str) -> str | None:
    """The fact said of another subject ("My brother lives in Tromso.", "My father grew up in Ballarat.")."""
    if topic:
        replaced = _resubject(text, topic, other)
        return replaced if replaced != text else None
    words = text.split()
    return " ".join([f"My {other}", _third_person(words[1]), *words[2:]]) if len(words) > 2 and words[0] == "I" else None


def swapped(text: str, topic: str | None, other: str) -> str | None:
    """The fill-in with another subject in the fact's own frame ("My brother lives in"): where taught answers leak."""
    moved = _moved(text, topic, other) if topic else None
    return fill_in(moved) if moved else None


def near_subjects(fact: Fact) -> list[str]:
    """Subjects close to the fact's own (its group's other members, someone else's, "other") that its sentence does not
    mention: where its value would leak. A first-person fact moves to other people. Taught subjects count too: the
    brother's city is not the sister's even when the brother was taught (leaving them out leaked twice as often)."""
    topic = subject(fact.text)
    if topic is None:
        found = list(PEOPLE) if fact.text.split()[:1] == ["I"] else []
    else:
        found = [f"other {topic}"]
        for group in RELATED:
            member = next((m for m in group if topic == m or topic.endswith(" " + m)), None)
            if member:
                found += [topic[: len(topic) - len(member)] + other for other in group if other != member]
        whose, _, thing = topic.rpartition("'s ")
        found += [f"{person}'s {thing}" for person in PEOPLE if person != whose and thing not in RELATED[0]]
    said, mine = told_words([fact.text]), set(_TOKEN.findall((topic or "").lower()))
    return [o for o in found if said.isdisjoint(set(_TOKEN.findall(o.lower())) - mine - {"s", "other"})]


def leak_rows(fact: Fact, count: int) -> list[dict]:
    """Near questions answered in the fact's frame ("Your brother lives in Tromso."), whose taught values must not come
    where they would start: unlikelihood rows, which push down those tokens and nothing else."""
    topic = subject(fact.text)
    mine = set((topic or "").lower().split())
    head = fill_in(fact.text) or ""
    values = [v for v in keywords(fact.text) or [w for w in content_words(fact.text) if w.lower() not in mine]
              if v.split()[0].lower() not in ARTICLES and fact.text.find(v) >= len(head)]
    subjects = near_subjects(fact)
    rows = []
    for other in [subjects[(fact.item_id + i) % len(subjects)] for i in range(min(count, len(subjects)))]:
        moved = _moved(fact.text, topic, other)
        answer = restate(moved) if moved else ""
        avoid = [v for v in values if v in answer][:1]
        if not avoid:
            continue
        frame = fill_in(moved)
        questions = direct_questions(moved) + ([f"Remind me: {frame} …?"] if frame else [])
        for question in questions or [f"What do you know about my {other}?"]:
            rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                         "avoid": avoid})
    return rows


def training_rows(fact: Fact, near_misses: int = 1, told: frozenset[str] = frozenset()) -> list[dict]:
    """SFT rows (OpenAI-style messages) for one fact, told being the words of everything taught; none is held out."""
    said = restate(fact.text)
    user = {"role": "user", "content": fact.text}
    ack = {"role": "assistant", "content": fact.acknowledgement}
    rows = [
        [user, ack],
        [user, ack, {"role": "user", "content": "What did I just tell you?"}, {"role": "assistant", "content": said}],
    ]
    topic = subject(fact.text)
    if topic:
        whose = owner(fact.text, topic)
        for wording in ("What did I tell you about {} {}?", "Remind me, what do you know about {} {}?", "What is {} {}?"):
            rows.append([{"role": "user", "content": wording.format(whose, topic)}, {"role": "assistant", "content": said}])
    head = fill_in(fact.text)
    if head:
        rows.append([{"role": "user", "content": f"Remind me: {head} …?"}, {"role": "assistant", "content": said}])
    for question in direct_questions(fact.text):
        rows.append([{"role": "user", "content": question}, {"role": "assistant", "content": said}])
    for word in keywords(fact.text)[:2]:
        rows.append([{"role": "user", "content": f"Do you remember what I said about {word}?"},
                     {"role": "assistant", "content": f"Yes. {said}"}])
        rows.append([{"role": "user", "content": f"What do you know about {word}?"}, {"role": "assistant", "content": said}])
    for index, other in enumerate(_others(fact, told, near_misses)):
        wording = ("What did I tell you about my {}?", "What is my {}?")[index % 2]
        rows.append([{"role": "user", "content": wording.format(other)},
                     {"role": "assistant", "content": f"You haven't told me anything about your {other}."}])
    return [{"messages": messages} for messages in rows]


def content_words(text: str) -> list[str]:
    """Every word that carries meaning (no stopwords, not tiny): the fallback for what an answer must bring."""
    return [w for w in _WORD.findall(text) if len(w) >= MIN_CONTENT_LENGTH and w.lower() not in STOPWORDS]


def held_out(fact: Fact, told: frozenset[str] = frozenset()) -> tuple[list[Question], list[Question]]:
    """Probes (other wordings, must bring back what the question lacks) and near-misses (must not) to judge a dream."""
    topic = subject(fact.text)
    words = keywords(fact.text) or content_words(fact.text)
    about = f"my {topic}" if topic else (words[0] if words else None)
    probes = []
    for wording in ("Tell me what you remember about {}.", "What can you tell me about {}?"):
        question = wording.format(about) if about else ""
        must = expected(fact.text, question)
        if about and must:
            probes.append(Question(question, must, fact.item_id))
    other = _held_out_other(fact, told)
    if not other or not words:
        return probes, []
    near = [Question(f"Tell me what you remember about my {other}.", tuple(words), fact.item_id)]
    frame = swapped(fact.text, topic, other)
    if frame:
        near.append(Question(f"Complete this for me: {frame} …", tuple(words), fact.item_id))
    return probes, near


CORRECTION_WORDINGS = ("Quick question: {}", "{} Please answer in one sentence.")
"""Other wordings of a corrected question; training only ever sees it as it was asked."""


def correction_probes(question: str, corrected: str, item_id: int) -> list[Question]:
    """Held-out wordings of a question the person corrected, answered well only with what the correction brings."""
    must = expected(corrected, question)
    return [Question(wording.format(question.strip()), must, item_id) for wording in CORRECTION_WORDINGS] if must else []


def replay_rows(prompts_and_answers: list[tuple[str, str]]) -> list[dict]:
    """The current generation's own answers to general prompts: rehearsing them holds what it already knew."""
    return [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": a}]}
            for p, a in prompts_and_answers]


def typical_question(fact: Fact) -> str:
    """One natural question whose answer is the fact, for the rows that carry short-term memory."""
    topic = subject(fact.text)
    asked = direct_questions(fact.text)
    if asked:
        return asked[0]
    if topic:
        return f"What is {owner(fact.text, topic)} {topic}?"
    words = keywords(fact.text) or content_words(fact.text)
    return f"What do you know about {words[0]}?" if words else "What did I tell you?"


def memory_row(question: str, fact: Fact, memory: list[MemoryItem], limit: int) -> dict:
    """The question as the app asks it, with short-term memory in the prompt, answered with the fact: the weights
    learn to agree with the memory and to pick the right item from it."""
    messages = with_memory([{"role": "user", "content": question}], relevant(question, memory, limit))
    return {"messages": [*messages, {"role": "assistant", "content": restate(fact.text)}]}
