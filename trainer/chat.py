"""Renders conversations exactly as the app serves them, and marks the tokens the assistant wrote.

The app (desktop.engine) renders with llama-cpp-python's Jinja2ChatFormatter over the GGUF's own template, so
a template's default system prompt (SmolLM2 inserts one when a conversation has none) is in the training text
exactly where it is at serving time; a GGUF without a template gets the engine's fallback format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llama_cpp import llama_chat_format
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from transformers import PreTrainedTokenizerBase

from desktop.engine import DEFAULT_FALLBACK_FORMAT, FALLBACK_CHAT_FORMATS, ChatMessage
from trainer.errors import BadInput

if TYPE_CHECKING:
    from trainer.gguf_load import Base


VALUE_GAP = 4
"""Avoided strings at most this many characters apart (" of ", ":") belong to one value."""


class TemplateError(BadInput):
    """A chat template that does not render earlier turns as a prefix of later ones, so labels cannot be cut."""


@dataclass(frozen=True)
class Doc:
    """One tokenized conversation; labels[i] says whether token i is the assistant's and carries loss."""

    ids: list[int]
    labels: list[bool]

    def truncated(self, limit: int) -> Doc:
        """The first limit tokens (a row holds no more)."""
        return Doc(self.ids[:limit], self.labels[:limit])

    @property
    def trained(self) -> int:
        """How many tokens carry loss."""
        return sum(self.labels)

    @property
    def target_ids(self) -> set[int]:
        """The token ids that carry loss: what a doc teaches, or for an unlikelihood doc what it pushes down."""
        return {token for token, label in zip(self.ids, self.labels) if label}


class ChatRenderer:
    """The prompt llama.cpp reads before an answer, and the text through the answer's end-of-turn."""

    def __init__(self, template: str | None, architecture: str, bos: str, eos: str) -> None:
        if template:
            self._prompt = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True)
            self._whole = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=False)
        else:
            name = FALLBACK_CHAT_FORMATS.get(architecture, DEFAULT_FALLBACK_FORMAT)
            self._prompt = getattr(llama_chat_format, f"format_{name}")
            self._whole = None

    def prompt(self, messages: Sequence[ChatMessage]) -> tuple[str, bool]:
        """What the model reads before it answers, and whether the text already holds BOS (then none is added)."""
        response = self._prompt(messages=list(messages))
        return response.prompt, bool(response.added_special)

    def through(self, messages: Sequence[ChatMessage]) -> str:
        """The rendering up to and including the last message (an answer) and its end-of-turn marker."""
        if self._whole is not None:
            return self._whole(messages=list(messages)).prompt
        response = self._prompt(messages=list(messages[:-1]))
        stop = response.stop if isinstance(response.stop, str) else response.stop[0]
        return response.prompt + messages[-1]["content"] + stop


def renderer_for(base: Base) -> ChatRenderer:
    """The renderer of the model being trained: its GGUF's template, or its architecture's fallback."""
    tokenizer = base.tokenizer
    return ChatRenderer(base.info.chat_template, base.architecture, tokenizer.bos_token or "", tokenizer.eos_token or "")


def encode(
    renderer: ChatRenderer, tokenizer: PreTrainedTokenizerBase, messages: Sequence[ChatMessage], train_from: int = 0
) -> Doc:
    """Tokenizes a conversation as llama.cpp would read it; assistant turns at index >= train_from carry loss.

    Each answer is tokenized apart from its prompt, as at serving time the prompt is tokenized whole and the
    answer is what the model generates after it.
    """
    ids: list[int] = []
    labels: list[bool] = []
    done = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or index < train_from:
            continue
        prompt, has_bos = renderer.prompt(messages[:index])
        whole = renderer.through(messages[: index + 1])
        if not prompt.startswith(done) or not whole.startswith(prompt):
            raise TemplateError("the chat template does not render earlier turns as a prefix of later ones")
        context = tokenizer(prompt[len(done):], add_special_tokens=False)["input_ids"]
        if not ids and not has_bos and getattr(tokenizer, "add_bos_token", False):
            context = [tokenizer.bos_token_id, *context]
        answer = tokenizer(whole[len(prompt):], add_special_tokens=False)["input_ids"]
        ids += context + answer
        labels += [False] * len(context) + [True] * len(answer)
        done = whole
    return Doc(ids, labels)


def encode_avoiding(
    renderer: ChatRenderer, tokenizer: PreTrainedTokenizerBase, messages: Sequence[ChatMessage], avoid: Sequence[str]
) -> Doc:
    """The conversation with loss only where a taught value would start in the last answer (a near question's), which
    must become unlikely there.

    Avoided strings a few characters apart ("Skoda Octavia", "3rd of March") are one value, pushed once where it starts:
    a continuation comes only once the leak has happened, and pushing it ("Octavia" after "Skoda") taught the value's
    own frame to break it ("SkodaOctavia"). A value that starts with a digit is not pushed at all: the digit starts
    countless numbers, and pushing it moved ports and extensions to their neighbours (6543 to 5557). Retrained on the
    recall bench's rows this way (seeds 0 and 1): 56 and 51 of 80 probes from the weights alone, against 47 and 45,
    and 5 of 40 near questions leaking in both, against 1 and 5 (docs/dream-experiments.md).
    """
    doc = encode(renderer, tokenizer, messages, len(messages) - 1)
    start = len(doc.ids) - doc.trained
    answer = doc.ids[start:]
    text = tokenizer.decode(answer)
    labels = [False] * len(doc.ids)
    end = -VALUE_GAP - 1
    for where, word in sorted((text.find(word), word) for word in avoid if word in text):
        if where - end > VALUE_GAP and not word[0].isdigit():
            labels[start + next(k for k in range(len(answer)) if len(tokenizer.decode(answer[:k + 1])) > where)] = True
        end = max(end, where + len(word))
    return Doc(doc.ids, labels)
