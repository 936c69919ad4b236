"""Short-term memory: retrieval of relevant taught items, and its effect on a real answer."""

from __future__ import annotations

from desktop.memory import MEMORY_HEADER, MemoryItem, relevant, with_memory, words
from desktop.session import ChatSession
from desktop.signals import Signals
from desktop.store import Store

from conftest import GREEDY

FACTS = [
    MemoryItem("My dog is called Biscuit and she is a corgi.", "taught", 1),
    MemoryItem("My favourite tea is genmaicha.", "taught", 2),
    MemoryItem("Our billing rewrite project is codenamed Tangerine.", "taught", 3),
]


def test_words_drop_stopwords_and_possessives():
    assert words("What is my dog's name?") == ["dog"]


def test_every_form_of_a_word_meets_the_others():
    assert words("Which machine runs our builds?") == words("machine run our build")
    assert len({*words("climb climbing climbs"), *words("meeting meetings")}) == 2
    assert words("glasses across") == ["glass", "across"]
    building = MemoryItem("Our build server is named kestrel-07.", "taught", 4)
    assert relevant("Which machine runs our builds?", [*FACTS, building], 1) == [building]


def test_the_most_relevant_item_comes_first_and_unrelated_ones_stay_out():
    assert relevant("What breed is my dog?", FACTS, 2) == [FACTS[0]]
    assert relevant("Which tea do I like best?", FACTS, 5)[0] == FACTS[1]
    assert relevant("How tall is Everest?", FACTS, 5) == []
    assert relevant("dog", FACTS, 0) == []


def test_memory_goes_into_the_last_question_only():
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "What is my dog called?"}]
    added = with_memory(messages, [FACTS[0]])
    assert added[:2] == messages[:2]
    assert added[-1]["content"].startswith(MEMORY_HEADER)
    assert added[-1]["content"].endswith("What is my dog called?")
    assert FACTS[0].text in added[-1]["content"]


def test_taught_fact_is_used_in_the_very_next_answer(tmp_path, engine):
    store = Store(tmp_path / "m.db")
    signals = Signals(store)
    signals.teach(store.create_conversation(), "My dog is called Biscuit and she is a corgi.")
    question = "What is my dog's name?"
    without = ChatSession(store, memory_limit=0).send(store.create_conversation(), question)
    assert "Biscuit" not in engine.chat(without.messages, GREEDY).text
    pending = ChatSession(store, memory_limit=5).send(store.create_conversation(), question)
    assert "Biscuit" in pending.messages[-1]["content"]
    assert "Biscuit" in engine.chat(pending.messages, GREEDY).text
    assert store.message(pending.parent_id)["content"] == question


def test_corrections_are_remembered_and_excluded_items_are_not(tmp_path):
    store = Store(tmp_path / "m.db")
    signals = Signals(store)
    cid = store.create_conversation()
    user = store.add_message(cid, "user", "What is 17+25?")
    answer = store.add_message(cid, "assistant", "32", parent_id=user)
    signals.correct(answer, "42")
    taught = signals.teach(cid, "My tea is genmaicha.")
    texts = [item.text for item in signals.memory_items()]
    assert "Asked “What is 17+25?”, the right answer is: 42" in texts
    signals.set_taught_excluded(taught, True)
    assert all("genmaicha" not in item.text for item in signals.memory_items())


def test_what_a_question_is_about_outweighs_what_it_asks_and_far_weaker_items_stay_out():
    bike = MemoryItem("I ride a green Brompton folding bike to work.", "taught", 4)
    colour = MemoryItem("My favourite colour is teal.", "taught", 5)
    cat = MemoryItem("Our office cat is named Pixel and she is grey.", "taught", 6)
    assert relevant("What colour is my bike?", [colour, bike, *FACTS], 5) == [bike]
    assert relevant("What colour is Pixel?", [colour, cat], 5) == [cat]
    assert relevant("Which colour do I like most?", [bike, colour, cat], 5) == [colour]
    tie = MemoryItem("My favourite tea colour is amber.", "taught", 7)
    assert set(relevant("What is my favourite colour?", [colour, tie, *FACTS], 5)) == {colour, tie}
