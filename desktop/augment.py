"""Turns taught items into training rows and held-out questions: one sentence barely teaches a fact, paraphrases do.

The templates follow what worked in the prototypes (../shared/DESIGN.md): the teach exchange itself, a
"what did I just tell you?" follow-up, "what did I tell you about <subject>?", a reminder, a fill-in of the
sentence up to its first distinctive word, "do you remember what I said about <keyword>?", and the reverse
question, direct questions built from the sentence ("Where does my sister live?") and the other wordings people use
("What bike do I ride?", "Who is my mentor?", "Whose boat is the Saltwren?"); answers restate the fact in the second
person. Questions about subjects nothing taught mentions get an honest "you haven't told me" where
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

ADVERBS = ("always", "usually", "often", "never", "sometimes", "rarely", "normally", "generally", "typically", "mostly",
           "regularly", "occasionally", "only", "also", "still", "just", "really", "upstairs", "downstairs", "outside",
           "nowadays")
"""Words that can stand between a subject and its verb ("I usually wake up", "The meeting room upstairs is") and are
not verbs, though some end in "s"."""
BE_FORMS = ("am", "is", "are", "was", "were", "be", "been")
PREPOSITIONS = ("to", "in", "on", "at", "from", "of", "with", "for", "about", "by", "into")
_ADVERB = rf"(?:{'|'.join(ADVERBS)})"
_VERB = rf"(?!{_ADVERB}\b)(?:is|are|was|were|has|have|had|[a-z]+s)\b"
_SUBJECT = re.compile(rf"\b(?:[Mm]y|[Oo]ur)\s+((?:[A-Za-z-]+(?:'s)?\s+){{0,2}}?(?!(?:{'|'.join(PREPOSITIONS)})\s)[A-Za-z-]+?)"
                      rf"(?:'s)?(?:\s+([A-Z][a-z]+))?\s+{_VERB}")
"""A "my/our X" subject, with the name a person put after it ("my son Arlo is"); a name after a preposition belongs to
the subject ("my flight to Lima leaves")."""
_THE_SUBJECT = re.compile(rf"^The\s+((?:[A-Za-z0-9-]+\s+){{0,5}}?[A-Za-z0-9-]+?)\s+{_VERB}")
"""A sentence about "the X" ("The X9 sensor measures …", "The plant on my desk is …")."""
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*(?::\d\d)?")
"""Words as the templates use them; a clock time is one word ("9:40", not "9" and "40")."""
_TOKEN = re.compile(r"\w+")
"""Words as whole-word matching sees them ("grandfather's" holds "grandfather")."""
_QUOTED = re.compile(r"['\"‘“]([^'\"’”]{2,40})['\"’”]")
FALLBACK_WORD_LENGTH = 7
MIN_CONTENT_LENGTH = 4
MIN_FILL_IN_WORDS = 3
NAMING_VERBS = ("called", "named", "codenamed")
ARTICLES = ("a", "an", "the")
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey", "gray", "teal",
           "silver", "gold")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
          "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
IRREGULAR_PAST = {"grew": "grow", "went": "go", "made": "make", "took": "take", "got": "get", "came": "come", "saw": "see",
                  "left": "leave", "met": "meet", "bought": "buy", "began": "begin", "wrote": "write"}
"""Past forms whose base form is certain; a regular "-ed" is not (lived → live, worked → work), so those stay unasked."""
PAST_TENSE = re.compile(rf"(?:ed|was|were|had|{'|'.join(IRREGULAR_PAST)})$", re.IGNORECASE)
_LAST_DIGIT = re.compile(r"\d(?=\D*$)")
NEAR_NUMBERS = (-2, -1, 1)
"""How far from a model number in a subject its near ones are (the X7 and X8 sensors beside the X9)."""
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
WHO = RELATED[0] + RELATED[1]
"""Subjects that are people: asked for with "who"."""
PLACES = ("home", "office", "work", "school")
"""Where a thing can be instead ("the guest Wi-Fi network at the office" beside the one at home); a person stays the same
person anywhere (leak rows about "my mentor at the office" cost "Who is my mentor?")."""
DOINGS = (
    ("climbing", "swimming", "running", "cycling", "dancing"),
    ("deploy", "release", "test", "monitor", "build"),
)
"""What a first-person fact without a subject does, and what it could do instead, where its value would leak ("I go
swimming at" beside "I go climbing at", "We monitor with" beside "We deploy with")."""


@dataclass(frozen=True)
class Fact:
    """A taught item as the dream sees it."""

    item_id: int
    text: str
    acknowledgement: str


CONTRACTED = {"'m": "am", "'re": "are", "'ve": "have", "'ll": "will"}
_CONTRACTION = re.compile(r"\b([A-Za-z]+)(n't|'m|'re|'ve|'ll)\b", re.IGNORECASE)
_WEEKDAYS_PLURAL = re.compile(rf"\b(on )?({'|'.join(WEEKDAYS)})s\b")
_CLOCK = re.compile(r"\b(\d{1,2}(?:[:.]\d\d)?)\s?([ap])\.?m\b\.?", re.IGNORECASE)


def _contraction(match: re.Match[str]) -> str:
    """A contraction spelled out ("I am" for "I'm", "do not" for "don't"), so the templates find the verb."""
    word, ending = match.group(1), match.group(2).lower()
    if ending == "n't":
        return {"ca": f"{word}nnot", "wo": f"{word[0]}ill not"}.get(word.lower(), f"{word} not")
    return f"{word} {CONTRACTED[ending]}"


def _weekday(match: re.Match[str]) -> str:
    """A plural weekday as a word of its own: "on Wednesday each week" for "on Wednesdays", "every Friday" for "Fridays"."""
    return f"on {match.group(2)} each week" if match.group(1) else f"every {match.group(2)}"


def plain(text: str) -> str:
    """A taught sentence with its days and times spelled as answers name them ("on Wednesday each week" for "on
    Wednesdays", "10 a.m." for "10am"): the model repeats the taught spelling, and in "Wednesdays" or "10am" the day or
    the hour is not a word of its own. Contractions are spelled out ("I am" for "I'm"), as the templates need."""
    text = _CONTRACTION.sub(_contraction, text.replace("\u2019", "'"))
    return _CLOCK.sub(lambda m: f"{m.group(1)} {m.group(2).lower()}.m.", _WEEKDAYS_PLURAL.sub(_weekday, text))


def restate(text: str) -> str:
    """The fact in the second person, as a sentence: "Your dog is called Biscuit."."""
    sentence = acknowledge(text).removeprefix("Noted: ")
    return sentence[0].upper() + sentence[1:]


def _subject_match(text: str) -> re.Match[str] | None:
    """Where the fact says what it is about, through the verb that follows."""
    return _THE_SUBJECT.match(text) or _SUBJECT.search(text)


def subject(text: str) -> str | None:
    """What the fact is about, as written, when it says "my X is …" ("dog", "CI pipeline") or starts "The X is …"
    ("X9 sensor", "plant on my desk")."""
    match = _subject_match(text)
    if match is None:
        return None
    return match.group(1)


def appositive(text: str) -> str | None:
    """The name a person put after the subject ("Arlo" of "My son Arlo is seven")."""
    match = _subject_match(text)
    return match.group(2) if match and match.re is _SUBJECT else None


def _without_name(text: str) -> str:
    """The fact without its appositive name: "My son is seven years old."."""
    name = appositive(text)
    return re.sub(rf"\s+{name}\b", "", text, count=1) if name else text


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
    return [w for i, w in enumerate(words) if len(w) >= FALLBACK_WORD_LENGTH and w.lower() not in STOPWORDS | about
            and not _predicate_head(words[i - 1:i + 2])]


def _predicate_head(around: list[str]) -> bool:
    """An adjective between "be" and its preposition ("am allergic to") heads the predicate; no one asks about it."""
    return len(around) == 3 and around[0].lower() in BE_FORMS and around[2].lower() in PREPOSITIONS


def expected(fact_text: str, question: str) -> tuple[str, ...]:
    """The keywords an answer must bring that the question does not already contain; else its content words."""
    asked = question.lower()
    return (tuple(word for word in keywords(fact_text) if word.lower() not in asked)
            or tuple(word for word in content_words(fact_text) if word.lower() not in asked))


def owner(text: str, topic: str) -> str:
    """Whose the subject is, as the person said it ("my", "our" or "the")."""
    if text.startswith(f"The {topic}"):
        return "the"
    return "our" if re.search(rf"\bour\s+{re.escape(topic)}", text, re.IGNORECASE) else "my"


def fill_in(text: str) -> str | None:
    """The fact cut just before a distinctive word past its subject (the first that leaves a few words; else just after
    the subject's verb; else, said in the first person, just after its verb) and any article before it, as a prompt to
    complete ("My dog is called …", "I go climbing at a gym called …", "The X9 sensor measures …", "I speak …")."""
    match = _subject_match(text)
    heads = []
    for word in keywords(text):
        cut = re.compile(rf"(?<![A-Za-z0-9]){re.escape(word)}").search(text, match.end(1) if match else 0)
        words = text[:cut.start()].rstrip(" '\"‘“,").split() if cut else []
        if words[-1:] and words[-1].lower() in ARTICLES:
            words.pop()
        heads.append(words)
    heads += [text[:match.end()].split()] if match else []
    fits = [h for h in heads if len(h) >= MIN_FILL_IN_WORDS] or [h for h in heads if len(h) == 2 and _speaker(h)]
    return " ".join(fits[0]) if fits else None


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


def _when_or_where(words: list[str]) -> str:
    """"When" where the words after "at"/"on" name a time or a day ("9:40", "the 3rd of March", "Wednesday"), else
    "Where" ("on Baker Street")."""
    first = next((w for w in words if w.lower() not in ARTICLES), "").strip(".,")
    timely = first[:1].isdigit() or first.capitalize() in WEEKDAYS + MONTHS or first.lower() in ("noon", "midnight")
    return "When" if timely else "Where"


def _speaker(words: list[str]) -> str:
    """"I" or "we" where a fact is said in the first person, the subject the question builders turn it around on."""
    return {"i": "I", "we": "we"}.get(words[0].lower(), "") if words else ""


def direct_questions(text: str) -> list[str]:
    """Questions in the shape people ask them ("Where does my sister live?", "What do I ride?"), from the sentence up to
    its first distinctive word; only present-tense statements about "my/our/the X", "I" or "we" are turned, and a
    name put after the subject is asked for ("What is my son's name?")."""
    head = fill_in(text) or ""
    words = head.split()
    if len(words) < 2:
        return []
    topic = subject(text)
    first = words[0].lower()
    if topic and first in ("my", "our", "the") and " ".join(words[1:]).lower().startswith(topic.lower()):
        whose = f"{first} {topic}"
        rest = words[1 + len(topic.split()):]
        name = appositive(text)
        named = [f"What is {whose}'s name?"] if name else []
        if rest[:1] == [name]:
            rest = rest[1:]
        if not rest:
            return named
        if rest[0].lower() in ("is", "are"):
            be, after = rest[0].lower(), _until_article(rest[1:])
            owned = _NAME_OF.match(topic)
            if owned:
                return [f"Who {be} {first} {owned.group(1)}?", f"What {be} {first} {owned.group(1)} called?"]
            if rest[-1].lower() in NAMING_VERBS:
                who = [f"Who {be} {whose}?"] if _head(topic) in WHO else []
                return [f"What {be} {whose} called?", f"What is the name of {whose}?", *who]
            if after and after[0].lower() in ("at", "on"):
                return [f"{_when_or_where(text[len(head):].split())} {be} {whose}?"]
            if after and (after[-1].lower() in PREPOSITIONS or after[-1].lower().endswith("ing")):
                return [f"What {be} {whose} {' '.join(after)}?"]
            if after:
                return named
            value = keywords(text)[:1]
            return named + ([f"Who {be} {whose}?"] if value and value[0][0].isupper() and not value[0].isupper() else [])
        verb, after = rest[0], _until_article(rest[1:])
        if PAST_TENSE.search(verb):
            return named
        if len(after) > 1 and after[-2].lower() in PREPOSITIONS and after[-1].lower() not in PREPOSITIONS:
            return [*named, f"Which {after[-1]} does {whose} {_base(verb)} {' '.join(after[:-1])}?"]
        asked = [*named, f"What does {whose} {_base(verb)} {' '.join(after)}?".replace(" ?", "?")]
        if after and after[-1].lower() in ("in", "at"):
            where = _when_or_where(text[len(head):].split())
            asked.append(f"{where} does {' '.join([whose, _base(verb), *after[:-1]])}?")
        return asked
    person = _speaker(words)
    if person:
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


def _phrase(words: list[str]) -> list[str]:
    """The words up to the first article, preposition, naming verb or punctuation: "go climbing at a gym" → "go climbing",
    "tool called Shipwright" → "tool"."""
    phrase = []
    for word in words:
        bare = word.rstrip(".,;:!?")
        if bare.lower() in ARTICLES + PREPOSITIONS + NAMING_VERBS:
            break
        phrase.append(bare)
        if bare != word:
            break
    return phrase


def _named(text: str) -> str | None:
    """The name a naming verb gives, article kept: "the Saltwren", "Shipwright"."""
    for word in keywords(text):
        found = re.search(rf"\b(?:{'|'.join(NAMING_VERBS)})\s+((?:the\s+)?){re.escape(word)}\b", text)
        if found:
            return f"{found.group(1)}{word}"
    return None


def _head(topic: str) -> str:
    """The noun a subject is about: "network" of "guest Wi-Fi network at home", "boat" of "grandfather's boat", "room" of
    "meeting room upstairs"."""
    nouns = [w for w in _phrase(topic.split()) or topic.split() if w.lower() not in ADVERBS] or topic.split()
    return nouns[-1].split("'s")[-1]


def _has_colour(words: list[str]) -> bool:
    """Whether the fact gives the thing a colour ("a green Brompton", "she is grey"), not a name ("a flat white")."""
    return any(w.lower() in COLOURS and words[i - 1].lower() in ARTICLES + ("is",) for i, w in enumerate(words) if i)


def other_wordings(text: str) -> list[str]:
    """More of the ways people ask for the same thing: without the subject's qualifier ("my mentor" for "my mentor at
    work"), which X I like best, the colour, the day, where I go, which X is called V and whose it is, "my desk plant"
    for "the plant on my desk". Not "the X" for "our X": with it a dream answered "What is H2O commonly called?" with
    "Your team lead is Priya Raman." and lost 3 of 20 general answers, without it 1."""
    topic = subject(text)
    whose = owner(text, topic) if topic else ""
    words = _WORD.findall(text)
    person = _speaker(words)
    verb = words[1] if person and len(words) > 1 else ""
    name = _named(text)
    asked = []
    short = " ".join(_phrase((topic or "").split()))
    if topic and short != topic and whose != "the":
        asked += [q.replace(topic, short) for q in direct_questions(text) if topic in q]
    if topic and topic.startswith("favourite "):
        asked.append(f"Which {topic.removeprefix('favourite ')} do {'we' if whose == 'our' else 'I'} like best?")
    local = re.fullmatch(r"(\w+) (?:on|at|in) (my|our) (\w+)", topic or "")
    if local:
        asked.append(f"What is {local.group(2)} {local.group(3)} {local.group(1)}{' called' if name else ''}?")
    thing = None
    if person and verb.lower() not in ("am", "are", "do", "cannot") and not PAST_TENSE.search(verb):
        phrase = _phrase(words[1:])
        does = f"do {person} {' '.join(phrase)}"
        rest = text.split(None, len(phrase) + 1)[-1].split()
        if rest[:1] and (rest[0].lower() == "at" or rest[0].lower() == "in" and verb.lower() in ("live", "work")):
            asked.append(f"{_when_or_where(rest[1:])} {does}?")
        preposition = rest[0] if rest[:1] and rest[0].lower() in PREPOSITIONS and rest[1:2] != [] else ""
        if rest[:1] and rest[0].lower() in ARTICLES or preposition and rest[1].lower() in ARTICLES:
            noun = _phrase(rest[2 if preposition else 1:])
            thing = noun[-1].lower() if noun else None
            if thing:
                asked += [f"What {thing} {does}{' ' + preposition if preposition else ''}?",
                          f"Which {thing} {does}{' ' + preposition if preposition else ''}?"]
        if any(w.rstrip("s") in WEEKDAYS for w in words):
            asked.append(f"On which day {does}?")
    about = f"{whose} {topic}" if topic and whose != "the" else (f"my {thing}" if thing else None)
    if _has_colour(words) and about and "colour" not in about:
        asked.append(f"What colour is {about}?")
    if name:
        noun = _head(topic) if topic else (thing or "")
        asked += [f"Which {noun} is called {name}?"] if noun else []
        if topic and "'s " in topic:
            asked.append(f"Whose {noun} is {name}?")
    return asked


def told_words(texts: Iterable[str]) -> frozenset[str]:
    """Every word of what was taught, lower-cased, counted once per dream rather than once per fact."""
    return frozenset(word for text in texts for word in _TOKEN.findall(text.lower()))


def _untold(fact: Fact, told: frozenset[str]) -> list[str]:
    """Subjects sharing no word with this fact or anything else taught: "you haven't told me" about them is true, and
    does not spill onto what was told (denying the favourite film made a dream deny the taught favourite colour)."""
    said = told | told_words([fact.text])
    return [other for other in OTHER_SUBJECTS if said.isdisjoint(other.split())]


def _rotated(items: list[str], start: int) -> list[str]:
    """items from start on, wrapping round: each fact takes its own share of a long list."""
    return items[start % len(items):] + items[:start % len(items)] if items else []


def _others(fact: Fact, told: frozenset[str], count: int) -> list[str]:
    """Subjects the fact is not about, for near-misses; training takes them from the fact's id on."""
    pool = _untold(fact, told)
    return _rotated(pool, fact.item_id)[:min(count, len(pool) - 1)]


def _held_out_other(fact: Fact, told: frozenset[str]) -> str | None:
    """The one subject training's near-misses reach last (the one before the fact's id): held-out near-misses use it."""
    pool = _untold(fact, told)
    return _rotated(pool, fact.item_id)[-1] if pool else None


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


def _doing(text: str) -> tuple[re.Match[str], tuple[str, ...]] | None:
    """The activity of a fact in the first person ("climbing" in "I go climbing at …") and the group it belongs to."""
    if not _speaker(text.split()):
        return None
    return next(((found, group) for group in DOINGS for found in (_word_in(m, text) for m in group) if found), None)


def _moved(text: str, topic: str | None, other: str, named: bool = False) -> str | None:
    """The fact said of another subject ("My brother lives in Tromso.", "My father grew up in Ballarat.") or of another
    activity ("I go swimming at …"), with the name after the subject when named ("My daughter Arlo is seven years
    old.")."""
    if topic:
        replaced = _resubject(text if named else _without_name(text), topic, other)
        return replaced if replaced != text else None
    doing = _doing(text)
    if doing and other in doing[1]:
        return text[:doing[0].start()] + other + text[doing[0].end():]
    words = text.split()
    if len(words) < 3 or _speaker(words) != "I":
        return None
    verb = 2 if words[1].lower() in ADVERBS and len(words) > 3 else 1
    return " ".join([f"My {other}", *words[1:verb], _third_person(words[verb]), *words[verb + 1:]])


def swapped(text: str, topic: str | None, other: str) -> str | None:
    """The fill-in with another subject in the fact's own frame ("My brother lives in"): where taught answers leak."""
    moved = _moved(text, topic, other) if topic else None
    return fill_in(moved) if moved else None


def _word_in(word: str, text: str) -> re.Match[str] | None:
    """Where word stands as a whole word in text, in any case ("coffee" in "usual coffee order", not "work" in
    "network")."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text, re.IGNORECASE)


def near_subjects(fact: Fact) -> tuple[list[str], list[str]]:
    """Subjects close to the fact's own that its sentence does not mention, where its value would leak: related ones
    (the other members of a group found in it, "my usual tea order" beside "my usual coffee order", another place, the
    model numbered next to it, another activity where the fact has no subject) and owners' ones ("other", someone
    else's; a first-person fact's other people). Taught subjects count too: the brother's city is not the sister's even
    when the brother was taught (leaving them out leaked twice as often)."""
    topic = subject(fact.text)
    related: list[str] = []
    if topic is None:
        owners = list(PEOPLE) if _speaker(fact.text.split()) == "I" else []
        doing = _doing(fact.text)
        related += [other for other in doing[1] if other != doing[0].group().lower()] if doing else []
    else:
        owners = [f"other {topic}"]
        places = () if _head(topic) in WHO else (PLACES,)
        for group in RELATED + places:
            found = next((match for match in (_word_in(m, topic) for m in group) if match), None)
            if found:
                related += [topic[:found.start()] + other + topic[found.end():] for other in group if other != found.group().lower()]
        related += [topic[:digit.start()] + str((int(digit.group()) + step) % 10) + topic[digit.end():]
                    for digit in _LAST_DIGIT.finditer(topic) for step in NEAR_NUMBERS]
        whose, _, thing = topic.rpartition("'s ")
        if owner(fact.text, topic) != "the":
            owners += [f"{person}'s {thing}" for person in PEOPLE if person != whose and thing not in RELATED[0]]
    said, mine = told_words([fact.text]), set(_TOKEN.findall((topic or "").lower()))
    kept = [[o for o in dict.fromkeys(found) if said.isdisjoint(set(_TOKEN.findall(o.lower())) - mine - {"s", "other"})]
            for found in (related, owners)]
    return kept[0], [o for o in kept[1] if o not in kept[0]]


def _alternating(first: list[str], second: list[str]) -> list[str]:
    """One of each in turn, then the rest of the longer list."""
    pairs = [item for pair in zip(first, second) for item in pair]
    return pairs + first[len(second):] + second[len(first):]


def leak_rows(fact: Fact, count: int) -> list[dict]:
    """Near questions answered in the fact's frame ("Your brother lives in Tromso."), whose taught values must not come
    where they would start: unlikelihood rows, which push down those tokens and nothing else. Related subjects and
    owners' ones take turns, so every fact has both kinds; a name after the subject must not come either ("Your
    daughter Arlo" after "My son Arlo is seven years old.")."""
    topic = subject(fact.text)
    mine = set((topic or "").lower().split())
    head = fill_in(fact.text) or ""
    after = [[v for v in found if v.split()[0].lower() not in ARTICLES and fact.text.find(v) >= len(head)]
             for found in (keywords(fact.text), [w for w in content_words(fact.text) if w.lower() not in mine])]
    name = appositive(fact.text)
    values = ([name] if name else []) + (after[0] or after[1])
    whose = owner(fact.text, topic) if topic else "my"
    related, owners = near_subjects(fact)
    rows = []
    for other in _alternating(_rotated(related, fact.item_id), _rotated(owners, fact.item_id))[:count]:
        moved, named = _moved(fact.text, topic, other), _moved(fact.text, topic, other, named=True)
        answer = restate(named) if moved and named else ""
        avoid = [v for v in values if v in answer]
        if not avoid:
            continue
        frame = fill_in(moved)
        questions = direct_questions(named) + ([f"Remind me: {frame} …?"] if frame else [])
        for question in questions or [f"What do you know about {whose} {other}?"]:
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
    for question in direct_questions(fact.text) + other_wordings(fact.text):
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
    about = f"{owner(fact.text, topic)} {topic}" if topic else (words[0] if words else None)
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
    learn to agree with the memory and to pick the right item from it, so the row keeps the nearest other items that
    the app would leave out."""
    messages = with_memory([{"role": "user", "content": question}], relevant(question, memory, limit, min_share=0.0))
    return {"messages": [*messages, {"role": "assistant", "content": restate(fact.text)}]}
