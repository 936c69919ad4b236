"""Conversation logic shared by the window and the command line: what to send, and where answers go in the tree."""

from __future__ import annotations

from dataclasses import dataclass

from desktop.engine import ChatMessage, GenerationResult
from desktop.modelfile import ModelInfo
from desktop.memory import relevant, with_memory
from desktop.signals import Signals
from desktop.store import DEFAULT_TITLE, Store

TITLE_CHARS = 48


@dataclass(frozen=True)
class PendingAnswer:
    """An answer about to be generated: where it will hang in the tree and what the model reads."""

    conversation_id: int
    parent_id: int
    messages: list[ChatMessage]


def title_from(text: str) -> str:
    """A conversation is named after its first question until the user renames it."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


class ChatSession:
    """Turns user intents (send, regenerate, edit, pick a sibling) into store changes and prompts."""

    def __init__(self, store: Store, memory_limit: int = 0) -> None:
        self.store = store
        self.memory_limit = memory_limit
        """How many taught items or corrections short-term memory adds to a question (0: none)."""

    def prompt_for(self, conversation_id: int, leaf_id: int) -> list[ChatMessage]:
        """The system prompt plus the branch that ends at leaf_id, in the shape chat templates take."""
        conversation = self.store.conversation(conversation_id)
        messages: list[ChatMessage] = []
        if conversation["system_prompt"].strip():
            messages.append({"role": "system", "content": conversation["system_prompt"]})
        messages += [{"role": m["role"], "content": m["content"]} for m in self.store.path_to(leaf_id)]
        return messages

    def prompt_with_memory(self, conversation_id: int, leaf_id: int) -> list[ChatMessage]:
        """What the model reads to answer: the branch, with relevant things taught or corrected added to the question."""
        messages = self.prompt_for(conversation_id, leaf_id)
        if self.memory_limit <= 0 or messages[-1]["role"] != "user":
            return messages
        items = Signals(self.store).memory_items()
        return with_memory(messages, relevant(messages[-1]["content"], items, self.memory_limit))

    def name_if_new(self, conversation_id: int, text: str) -> None:
        """A conversation is named after its first message until the user renames it."""
        conversation = self.store.conversation(conversation_id)
        if conversation["current_leaf_id"] is None and conversation["title"] == DEFAULT_TITLE:
            self.store.rename_conversation(conversation_id, title_from(text))

    def send(self, conversation_id: int, text: str) -> PendingAnswer:
        """Adds the user's message under the active branch's leaf."""
        self.name_if_new(conversation_id, text)
        conversation = self.store.conversation(conversation_id)
        user_id = self.store.add_message(conversation_id, "user", text, parent_id=conversation["current_leaf_id"])
        return PendingAnswer(conversation_id, user_id, self.prompt_with_memory(conversation_id, user_id))

    def regenerate(self, assistant_id: int) -> PendingAnswer:
        """A new answer to the same question; the old one stays as a sibling."""
        answer = self.store.message(assistant_id)
        if answer["role"] != "assistant" or answer["parent_id"] is None:
            raise ValueError(f"message {assistant_id} is not an answer")
        cid = answer["conversation_id"]
        self.store.set_leaf(cid, answer["parent_id"])
        return PendingAnswer(cid, answer["parent_id"], self.prompt_with_memory(cid, answer["parent_id"]))

    def edit(self, user_id: int, text: str) -> PendingAnswer:
        """An edited question starts a new branch beside the original, which is kept."""
        original = self.store.message(user_id)
        if original["role"] != "user":
            raise ValueError(f"message {user_id} is not a user message")
        cid = original["conversation_id"]
        new_id = self.store.add_message(cid, "user", text, parent_id=original["parent_id"])
        return PendingAnswer(cid, new_id, self.prompt_with_memory(cid, new_id))

    def finish(self, pending: PendingAnswer, result: GenerationResult, model_id: int | None) -> int:
        """Stores the answer (even a stopped, partial one) with the model that wrote it."""
        return self.store.add_message(
            pending.conversation_id,
            "assistant",
            result.text,
            parent_id=pending.parent_id,
            model_id=model_id,
            finish_reason=result.finish_reason,
            stats=result.stats(),
        )

    def step_sibling(self, message_id: int, step: int) -> int:
        """Moves to the previous/next sibling and returns the new active leaf."""
        siblings = [m["id"] for m in self.store.siblings(message_id)]
        index = min(max(siblings.index(message_id) + step, 0), len(siblings) - 1)
        return self.store.select_branch(siblings[index])

    def register_model(self, info: ModelInfo) -> int:
        """Every answer records which model file wrote it."""
        return self.store.upsert_model(
            str(info.path), info.name, info.architecture, info.quantization, info.size_bytes
        )
