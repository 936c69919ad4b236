"""The dream's plain-Python parts: training rows and held-out questions, the gate, idle policy, generations."""

from __future__ import annotations

import json

import pytest

from conftest import BENCH
from desktop.augment import (
    Fact, appositive, correction_probes, direct_questions, fill_in, held_out, keywords, leak_rows, memory_row, near_subjects,
    other_wordings, owner, plain, restate, subject, told_words, training_rows, typical_question,
)
from desktop.memory import MEMORY_HEADER, MemoryItem, relevant
from desktop.dream import DATA, DreamRecipe, Measures, gate, load_questions
from desktop.rlvr import PassRate
from desktop.evaluate import Score, mentions, score
from desktop.generations import Generations
from desktop.idle import dream_due, on_ac_power
from desktop.settings import Settings
from desktop.store import Store

DOG = Fact(1, "My dog is called Biscuit and she is a corgi.", "Noted: your dog Biscuit is a corgi.")


def test_fact_parts():
    assert subject(DOG.text) == "dog"
    assert keywords(DOG.text) == ["Biscuit"]
    assert keywords("In our team a 'sparrow' means a hotfix release shipped on a Friday.") == ["sparrow", "Friday"]
    assert restate("I live in Lisbon.") == "You live in Lisbon."
    assert restate("I do not take meetings before 10am.") == "You do not take meetings before 10am."
    assert fill_in(DOG.text) == "My dog is called" and fill_in("I grew up in Ballarat.") == "I grew up in"
    assert fill_in("The VPN gateway is vpn.eastgate.example.") == "The VPN gateway is"
    assert fill_in("The guest Wi-Fi network at home is called MapleNest.") == "The guest Wi-Fi network at home is called"
    assert subject("The X9 sensor measures humidity.") == "X9 sensor" and owner("The X9 sensor measures humidity.", "X9 sensor") == "the"
    assert subject("The plant on my desk is a fig named Gerald.") == "plant on my desk"
    assert (subject("My son Arlo is seven years old."), appositive("My son Arlo is seven years old.")) == ("son", "Arlo")
    assert (subject("My neighbour Luis plays the cello."), appositive("My neighbour Luis plays the cello.")) == ("neighbour", "Luis")
    assert appositive("My team lead is Priya Raman.") is None and fill_in("My favourite colour is teal.") == "My favourite colour is"
    assert owner("Our build server is named kestrel-07.", "build server") == "our" and owner(DOG.text, "dog") == "my"
    assert fill_in("I am allergic to hazelnuts.") == "I am allergic to" and keywords("I am allergic to hazelnuts.") == ["hazelnuts"]
    assert keywords("My brother is married to a dentist.") == ["dentist"] and keywords("My sister is adorable.") == ["adorable"]
    assert keywords("I take the 8:05 train to work.") == ["8:05"] and fill_in("I take the 8:05 train to work.") == "I take"
    gym = "I go climbing at a gym called The Crux every Tuesday."
    assert keywords(gym) == ["Crux", "Tuesday"] and fill_in(gym) == "I go climbing at a gym called"
    assert keywords("Our book club is reading 'The Dispossessed' this month.") == ["The Dispossessed", "Dispossessed"]


@pytest.mark.parametrize(("fact", "questions"), [
    (DOG.text, ["What is my dog called?", "What is the name of my dog?"]),
    ("My sister lives in Tromso.", ["What does my sister live in?", "Where does my sister live?"]),
    ("My team lead is Priya Raman.", ["Who is my team lead?"]),
    ("My shoe size is EU 44.", []),
    ("Our daily standup is at 9:40 in the morning.", ["When is our daily standup?"]),
    ("I ride a green Brompton folding bike to work.", ["What do I ride?"]),
    ("I am allergic to hazelnuts.", ["What am I allergic to?"]),
    ("I cannot stand coriander.", ["What can I not stand?"]),
    ("I grew up in Ballarat.", ["Where did I grow up?"]),
    ("I bought a Fiat Panda.", ["What did I buy?"]),
    ("I lived in Oslo.", []),
    ("My landlord's name is Mrs Okafor.", ["Who is my landlord?", "What is my landlord called?"]),
    ("My grandfather's boat is called the Saltwren.",
     ["What is my grandfather's boat called?", "What is the name of my grandfather's boat?"]),
    ("My son Arlo is seven years old.", ["What is my son's name?", "Who is my son?"]),
    ("My neighbour Luis plays the cello.", ["What is my neighbour's name?", "What does my neighbour play?"]),
    ("The X9 sensor measures humidity, not temperature.", ["What does the X9 sensor measure?"]),
    ("The plant on my desk is a fiddle-leaf fig named Gerald.",
     ["What is the plant on my desk called?", "What is the name of the plant on my desk?"]),
    ("The on-call phone number for our team is extension 4471.", []),
    ("Our book club is reading 'The Dispossessed' this month.", ["What is our book club reading?"]),
])
def test_direct_questions_ask_what_people_ask(fact, questions):
    assert direct_questions(fact) == questions


@pytest.mark.parametrize(("fact", "questions"), [
    ("I ride a green Brompton folding bike to work.", ["What bike do I ride?", "Which bike do I ride?", "What colour is my bike?"]),
    ("I go climbing at a gym called The Crux every Tuesday.",
     ["Where do I go climbing?", "What gym do I go climbing at?", "Which gym do I go climbing at?",
      "On which day do I go climbing?"]),
    ("We deploy with a tool called Shipwright.",
     ["What tool do we deploy with?", "Which tool do we deploy with?", "Which tool is called Shipwright?"]),
    ("Our office cat is named Pixel and she is grey.", ["What colour is our office cat?", "Which cat is called Pixel?"]),
    ("My grandfather's boat is called the Saltwren.", ["Which boat is called the Saltwren?", "Whose boat is the Saltwren?"]),
    ("The plant on my desk is a fiddle-leaf fig named Gerald.", ["What is my desk plant called?", "Which plant is called Gerald?"]),
    ("My favourite colour is teal.", ["Which colour do I like best?"]),
    ("My mentor at work is called Tomasz.",
     ["What is my mentor called?", "What is the name of my mentor?", "Who is my mentor?", "Which mentor is called Tomasz?"]),
    ("My usual coffee order is a flat white with oat milk.", []),
    ("I write code in Helix, not Vim.", []),
])
def test_other_wordings_ask_as_people_do(fact, questions):
    assert other_wordings(fact) == questions


def test_leak_rows_never_ask_the_held_out_near_misses():
    sister = Fact(7, "My sister lives in Tromso.", "Noted.")
    _probes, near = held_out(sister)
    assert near and not {q.question for q in near} & {row["messages"][0]["content"] for row in leak_rows(sister, 99)}


def test_leak_rows_put_the_taught_value_into_near_frames_as_what_must_not_come():
    sister = Fact(7, "My sister lives in Tromso.", "Noted.")
    assert len({row["messages"][-1]["content"] for row in leak_rows(sister, 6)}) == 6
    rows = leak_rows(sister, 99)
    asked = [row["messages"][0]["content"] for row in rows]
    answers = {row["messages"][-1]["content"] for row in rows}
    assert all(a.endswith(" lives in Tromso.") for a in answers) and all(row["avoid"] == ["Tromso"] for row in rows)
    assert {"Your brother lives in Tromso.", "Your other sister lives in Tromso."} <= answers
    assert "Where does my brother live?" in asked and not [text for text in asked if "my sister" in text]
    moved = leak_rows(Fact(1, "I grew up in Ballarat.", "Noted."), 2)
    assert moved and all(row["messages"][-1]["content"].endswith(" grew up in Ballarat.") for row in moved)
    assert leak_rows(Fact(1, "My favourite tea is genmaicha.", "Noted."), 9)[0]["avoid"] == ["genmaicha"]
    assert "favourite coffee" in {row["messages"][-1]["content"][5:-len(" is genmaicha.")]
                                  for row in leak_rows(Fact(1, "My favourite tea is genmaicha.", "Noted."), 9)}
    sensor = {row["messages"][0]["content"]: row["avoid"]
              for row in leak_rows(Fact(1, "The X9 sensor measures humidity, not temperature.", "Noted."), 6)}
    assert sensor["What does the X7 sensor measure?"] == ["humidity", "temperature"]
    wifi = leak_rows(Fact(1, "The guest Wi-Fi network at home is called MapleNest.", "Noted."), 6)
    assert "What is the guest Wi-Fi network at office called?" in {row["messages"][0]["content"] for row in wifi}
    mentor = leak_rows(Fact(1, "My mentor at work is called Tomasz.", "Noted."), 9)
    assert mentor and not [row for row in mentor if "office" in row["messages"][0]["content"]]
    cello = leak_rows(Fact(1, "My neighbour Luis plays the cello.", "Noted."), 6)
    assert cello and all(row["avoid"] == ["Luis", "cello"] for row in cello)
    assert not [row for row in cello if "Luis" in row["messages"][0]["content"]]
    cellists = {row["messages"][0]["content"] for row in leak_rows(Fact(1, "My neighbour Luis plays the cello.", "Noted."), 99)}
    assert {"What does my sister play?", "What is my sister's name?"} <= cellists


def test_near_subjects_are_related_ones_and_owners_and_leak_rows_take_both():
    coffee = Fact(3, "My usual coffee order is a flat white with oat milk.", "Noted.")
    related, owners = near_subjects(coffee)
    assert "usual tea order" in related and "sister's usual coffee order" in owners and not set(related) & set(owners)
    assert near_subjects(Fact(1, "Our guest network is open.", "Noted."))[0] == []
    asked = [row["messages"][0]["content"] for row in leak_rows(coffee, 4)]
    assert any("tea order" in q or "juice order" in q or "beer order" in q or "wine order" in q for q in asked)
    assert any("'s usual coffee order" in q for q in asked)


def test_days_and_times_are_spelled_so_that_the_day_and_the_hour_are_words_of_their_own():
    release = plain("We always release to production on Wednesdays.")
    assert release == "We always release to production on Wednesday each week."
    assert mentions(restate(release), ["Wednesday"]) and not mentions("on Wednesdays", ["Wednesday"])
    assert plain("I do not take meetings before 10am.") == "I do not take meetings before 10 a.m."
    assert restate(plain("I do not take meetings before 10am.")) == "You do not take meetings before 10 a.m."
    assert plain("We ship Fridays, lunch at 12:30PM, dinner at 7.15 pm; I am 10 amazing.") == (
        "We ship every Friday, lunch at 12:30 p.m., dinner at 7.15 p.m.; I am 10 amazing.")


def test_contractions_adverbs_and_places_give_questions_a_person_would_ask():
    assert plain("I'm vegetarian and I can’t stand coriander; we don't deploy on Fridays.") == (
        "I am vegetarian and I cannot stand coriander; we do not deploy on Friday each week.")
    assert plain("I won't eat fish, we've moved and it isn't red.") == "I will not eat fish, we have moved and it is not red."
    assert direct_questions("Our office is on Baker Street.") == ["Where is our office?"]
    assert direct_questions("Our daily standup is at 9:40 in the morning.") == ["When is our daily standup?"]
    assert direct_questions("My partner's birthday is on the 3rd of March.") == ["When is my partner's birthday?"]
    assert direct_questions("Our retro is on Friday.") == ["When is our retro?"]
    assert subject("The meeting room upstairs is called Everest.") == "meeting room upstairs"
    assert direct_questions("The meeting room upstairs is called Everest.")[0] == "What is the meeting room upstairs called?"
    rows = leak_rows(Fact(0, "I usually wake up at 6:15.", "Noted."), 4)
    assert "Your father usually wakes up at 6:15." in {row["messages"][-1]["content"] for row in rows}
    assert other_wordings("I usually wake up at 6:15.") == ["When do I usually wake up?"]
    restarts = direct_questions(plain("The staging server restarts every night at 2am."))
    assert "When does the staging server restart every night?" in restarts
    assert "Where does my daughter keep my passwords?" in direct_questions("My daughter keeps my passwords in Bitwarden.")
    assert "Where does my sister live?" in direct_questions("My sister lives in Tromso.")
    assert other_wordings("The meeting room upstairs is called Everest.") == ["Which room is called Everest?"]


def test_short_first_person_facts_are_still_asked_and_restated_in_good_english():
    assert fill_in("I speak Finnish at home.") == "I speak" and direct_questions("I speak Finnish at home.") == ["What do I speak?"]
    assert fill_in("I am vegetarian.") == "I am" and fill_in("I am allergic to hazelnuts.") == "I am allergic to"
    assert fill_in("Priya leads Tangerine.") is None
    born = [row["messages"][-1]["content"] for row in training_rows(Fact(0, "I was born in 1987.", "Noted."), 0)]
    assert "You were born in 1987." in born and not [text for text in born if "You was" in text]


def test_a_subject_keeps_its_capitals_and_is_never_its_own_neighbour():
    ci = "Our CI pipeline runs on a machine called falcon-12."
    assert subject(ci) == "CI pipeline" and "What does our CI pipeline run on?" in direct_questions(ci)
    flight = "My flight to Lima leaves on Friday."
    assert (subject(flight), appositive(flight)) == ("flight to Lima", None)
    related, _owners = near_subjects(Fact(0, "My Dog is called Rex.", "Noted."))
    assert "cat" in related and "dog" not in related


def test_a_first_person_fact_without_a_subject_is_moved_to_another_activity_too():
    climbing = Fact(0, "I go climbing at a gym called The Crux every Tuesday.", "Noted.")
    related, owners = near_subjects(climbing)
    assert "swimming" in related and "climbing" not in related and "partner" in owners
    answers = {row["messages"][-1]["content"] for row in leak_rows(climbing, 4)}
    assert "You go swimming at a gym called The Crux every Tuesday." in answers
    assert "Your sister goes climbing at a gym called The Crux every Tuesday." in answers
    tools = leak_rows(Fact(0, "We deploy with a tool called Shipwright.", "Noted."), 4)
    assert "Remind me: We monitor with a tool called …?" in {row["messages"][0]["content"] for row in tools}
    assert all(row["avoid"] == ["Shipwright"] for row in tools)
    sparrow = Fact(0, "In our team a 'sparrow' means a hotfix release shipped on a Friday.", "Noted.")
    assert near_subjects(sparrow) == ([], [])


def test_a_memory_row_is_the_question_as_the_app_serves_it_with_memory():
    memory = [MemoryItem(DOG.text, "taught", 1), MemoryItem("My favourite tea is genmaicha.", "taught", 2)]
    row = memory_row(typical_question(DOG), DOG, memory, 5)
    asked, answer = row["messages"]
    assert asked["content"].startswith(MEMORY_HEADER) and asked["content"].endswith("What is my dog called?")
    assert DOG.text in asked["content"] and "genmaicha" not in asked["content"]
    assert answer == {"role": "assistant", "content": "Your dog is called Biscuit and she is a corgi."}


def test_a_memory_row_keeps_the_near_items_the_app_would_leave_out_so_the_weights_learn_to_pick():
    tea = Fact(2, "My favourite tea is genmaicha.", "Noted: genmaicha.")
    memory = [MemoryItem(tea.text, "taught", 2), MemoryItem("My favourite colour is teal.", "taught", 3)]
    question = typical_question(tea)
    assert relevant(question, memory, 5) == memory[:1]
    asked = memory_row(question, tea, memory, 5)["messages"][0]["content"]
    assert 0 < asked.index(tea.text) < asked.index("teal")


def test_training_rows_never_contain_held_out_questions():
    rows = training_rows(DOG, near_misses=1)
    asked = {m["content"] for row in rows for m in row["messages"] if m["role"] == "user"}
    probes, near = held_out(DOG)
    assert probes and near
    assert not asked & {q.question for q in probes + near}
    assert all(row["messages"][-1]["role"] == "assistant" for row in rows)
    assert any("haven't told me" in row["messages"][-1]["content"] for row in rows)
    assert probes[0].strings == ("Biscuit",)
    assert "Biscuit" not in probes[0].question


def test_near_misses_never_ask_about_something_taught():
    told = told_words([DOG.text, "My sister lives in Tromso.", "Our office cat is named Pixel.", "My car is a blue Skoda.",
                       "My favourite colour is teal."])
    facts = [Fact(item_id, "Our backend is written in Elixir.", "Noted.") for item_id in range(1, 20)]
    rows = [row for fact in facts for row in training_rows(fact, 2, told)]
    prompts = [n.question for fact in facts for n in held_out(fact, told)[1]]
    denied = [row["messages"][-1]["content"] for row in rows if "haven't told me" in row["messages"][-1]["content"]]
    assert denied and prompts
    assert not [text for text in denied + prompts if mentions(text, ("sister", "cat", "car", "favourite"))]
    alone = [row["messages"][-1]["content"] for fact in facts for row in training_rows(fact, 2)]
    assert [text for text in alone if mentions(text, ("sister", "cat", "car", "favourite"))]


def test_whole_word_scoring():
    assert mentions("Her name is Biscuit.", ["biscuit"])
    assert not mentions("Noted.", ["no"])


def anchored() -> set[str]:
    return {line.strip().lower() for line in (DATA / "replay_prompts.txt").read_text(encoding="utf-8").splitlines()}


def test_the_gates_general_questions_are_ones_the_base_answers_and_the_anchor_never_asks(engine):
    general = load_questions(DATA / "retention.jsonl")
    assert len(general) >= 50 and not {q.question.lower() for q in general} & anchored()
    result = score(engine, general)
    assert result.fraction == 1.0, [a for a, ok in zip(result.answers, result.passed) if not ok]


@pytest.mark.skipif(not BENCH.exists(), reason="shared bench data not present")
def test_the_anchor_never_asks_the_benchmarks_general_questions():
    public = load_questions(BENCH / "retention-public.jsonl")
    assert len(public) == 20 and not {q.question.lower() for q in public} & anchored()


def measures(recall=0.2, earlier=1.0, leaks=0.0, retention=0.9, ppl=10.0) -> Measures:
    return Measures(Score(recall, [recall >= 0.5]), Score(earlier), Score(leaks), Score(retention), ppl, PassRate())


def test_a_corrected_question_is_held_out_in_other_wordings():
    probes = correction_probes("What is the capital of Australia?", "The capital of Australia is Canberra.", 5)
    assert len(probes) == 2 and all(p.strings == ("Canberra",) and p.item_id == 5 for p in probes)
    assert all("What is the capital of Australia?" in p.question and p.question != "What is the capital of Australia?"
               for p in probes)
    assert correction_probes("Say hi", "Say hi", 1) == []


def test_gate_promotes_a_dream_of_corrections_only_when_they_came_back():
    recipe = DreamRecipe()
    before = measures(recall=0.0)
    before.recall.passed = []
    after = measures(recall=0.0)
    after.recall.passed = []
    before.corrections, after.corrections = Score(0.0, [False, False]), Score(0.5, [True, False])
    assert gate(before, after, recipe) == []
    assert "corrections 50% → 50%" in gate(after, after, recipe)[0]


def test_gate_promotes_only_learning_without_damage():
    recipe = DreamRecipe()
    before = measures()
    assert gate(before, measures(recall=0.8), recipe) == []
    assert "did not learn" in gate(before, measures(recall=0.2), recipe)[0]
    assert "general knowledge" in gate(before, measures(recall=0.8, retention=0.8), recipe)[0]
    assert "leak" in gate(before, measures(recall=0.8, leaks=0.3), recipe)[0]
    assert "forgot" in gate(before, measures(recall=0.8, earlier=0.5), recipe)[0]
    assert "perplexity" in gate(before, measures(recall=0.8, ppl=12.0), recipe)[0]


def test_idle_policy():
    settings = Settings(dream_idle_minutes=10)
    assert dream_due(settings, 601, False, 3, None)[0]
    assert not dream_due(settings, 300, False, 3, None)[0]
    assert "in 5 min" in dream_due(settings, 300, False, 3, None)[1]
    assert not dream_due(settings, 601, True, 3, None)[0]
    assert "Nothing new" in dream_due(settings, 601, False, 0, None)[1]
    assert "AC power" in dream_due(Settings(dream_on_ac_only=True), 601, False, 3, False)[1]
    assert not dream_due(Settings(dreams_enabled=False), 601, False, 3, None)[0]


def test_ac_power_reads_linux_supplies(tmp_path):
    assert on_ac_power(tmp_path) is None
    mains = tmp_path / "AC"
    mains.mkdir()
    (mains / "type").write_text("Mains\n")
    (mains / "online").write_text("0\n")
    assert on_ac_power(tmp_path) is False
    (mains / "online").write_text("1\n")
    assert on_ac_power(tmp_path) is True


def test_generations_record_activate_and_roll_back(tmp_path):
    store = Store(tmp_path / "g.db")
    generations = Generations(store)
    base = tmp_path / "base.gguf"
    assert generations.active(base) is None and generations.retries() == 0
    kept = generations.record_dream("2026-01-01", "kept", "did not learn", {"facts": 1})
    assert generations.retries() == 1
    promoted = {"parent_id": None, "base_path": str(base), "model_path": "m1.gguf", "adapter_path": "a1.gguf", "metrics": {}}
    generations.record_dream("2026-01-02", "promoted", "learned 1 of 1", {"facts": 1}, promoted)
    assert generations.retries() == 0
    first = generations.active(base)
    assert first["model_path"] == "m1.gguf"
    second = {**promoted, "parent_id": first["id"], "model_path": "m2.gguf", "adapter_path": "a2.gguf"}
    generations.record_dream("2026-01-03", "promoted", "learned", {"facts": 1}, second)
    assert [g["adapter_path"] for g in generations.lineage(generations.active(base))] == ["a1.gguf", "a2.gguf"]
    generations.activate(first["id"])
    assert generations.active(base)["id"] == first["id"]
    generations.activate(None)
    assert generations.active(base) is None
    assert generations.active(tmp_path / "other.gguf") is None
    generations.record_dream("2026-01-04", "failed", "the trainer exited with 1", {"facts": 1})
    generations.record_dream("2026-01-05", "kept", "it forgot", {"facts": 1})
    assert generations.retries() == 2
    assert [d["outcome"] for d in generations.dreams()] == ["kept", "failed", "promoted", "promoted", "kept"]
    assert kept not in generations.promoted_by_dream() and len(generations.promoted_by_dream()) == 2
    with pytest.raises(KeyError):
        generations.activate(99)
    assert generations.last_dream_at() == "2026-01-05"


def test_only_signals_newer_than_the_last_dream_count(tmp_path):
    from desktop.signals import Signals

    store = Store(tmp_path / "n.db")
    signals = Signals(store)
    cid = store.create_conversation()
    signals.teach(cid, "My dog is called Biscuit.")
    assert signals.count_since(None) == 1
    Generations(store).record_dream("2000-01-01", "kept", "did not learn", {})
    assert signals.count_since(Generations(store).last_dream_at()) == 1
    assert signals.count_since("2999-01-01") == 0
