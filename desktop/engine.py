"""One llama.cpp model: streamed chat answers that stop between tokens and reuse the KV cache across turns."""

from __future__ import annotations

import codecs
import ctypes
import math
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence, TypedDict

import llama_cpp
import numpy as np
from llama_cpp import llama_chat_format

from desktop.modelfile import ModelFileError, ModelInfo, inspect_gguf

FALLBACK_CHAT_FORMATS = {"gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma"}
"""Chat formats for models whose GGUF carries no template, by architecture; anything else gets chatml."""
DEFAULT_FALLBACK_FORMAT = "chatml"
MIN_ANSWER_TOKENS = 16
"""A prompt must leave at least this much room in the context for the answer."""
LOG_LINES_KEPT = 20
LLAMA_LOG_WARN = 3
LLAMA_LOG_ERROR = 4
_LOG_PREFIX = re.compile(r"^(\w+: )+")


class ChatMessage(TypedDict):
    """The message shape every chat template takes."""

    role: str
    content: str


@dataclass(frozen=True)
class LoadOptions:
    """What it takes to load a model; a change to any field means a reload."""

    model_path: Path
    n_ctx: int = 4096
    n_threads: int = 2
    n_gpu_layers: int = 0
    chat_format: str = ""
    logits_all: bool = False
    """Keep every position's logits (needed for perplexity); costs n_ctx × vocab floats of memory."""


@dataclass(frozen=True)
class SamplingParams:
    """How one answer is sampled; temperature 0 is greedy."""

    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512


@dataclass(frozen=True)
class GenerationResult:
    """What one answer cost and why it ended, kept with the message for the status bar and benchmarks."""

    text: str
    finish_reason: str
    prompt_tokens: int
    reused_tokens: int
    generated_tokens: int
    ttft_s: float
    decode_tok_s: float
    total_s: float
    context_used: int

    def stats(self) -> dict:
        """The JSON-able numbers, without the text."""
        numbers = asdict(self)
        del numbers["text"], numbers["finish_reason"]
        return numbers


class EngineError(Exception):
    """A request the loaded model cannot serve (e.g. a prompt longer than the context); the message says what to do."""


class _LlamaLog:
    """Keeps llama.cpp's recent warnings and errors so a failed load can say why instead of just 'failed'."""

    def __init__(self) -> None:
        self.lines: deque[tuple[int, str]] = deque(maxlen=LOG_LINES_KEPT)
        self._callback = llama_cpp.llama_log_callback(self._on_log)
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))

    def _on_log(self, level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        if level in (LLAMA_LOG_ERROR, LLAMA_LOG_WARN):
            line = text.decode("utf-8", errors="replace").strip()
            if line:
                self.lines.append((level, line))

    def reason(self) -> str:
        """The first error llama.cpp logged (later ones only repeat that loading failed), without function names."""
        errors = [line for level, line in self.lines if level == LLAMA_LOG_ERROR]
        recent = [line for _level, line in self.lines]
        chosen = errors[0] if errors else (recent[-1] if recent else "no reason given")
        return _LOG_PREFIX.sub("", chosen)


_LOG = _LlamaLog()


def backend_info() -> dict:
    """What this llama.cpp build can do, for `doctor` and for showing GPU settings only where they work."""
    system = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()
    return {
        "llama_cpp_python": llama_cpp.__version__,
        "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
        "system_info": system,
    }


def common_prefix(cached: Sequence[int], tokens: Sequence[int]) -> int:
    """How many leading tokens the KV cache already holds; those are not evaluated again."""
    count = 0
    for a, b in zip(cached, tokens):
        if a != b:
            break
        count += 1
    return count


class Engine:
    """Owns one loaded model; every method must be called from the same (worker) thread."""

    def __init__(self, options: LoadOptions) -> None:
        self.options = options
        self.info: ModelInfo = inspect_gguf(options.model_path)
        _LOG.lines.clear()
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(options.model_path),
                n_ctx=options.n_ctx,
                n_threads=options.n_threads,
                n_threads_batch=options.n_threads,
                n_gpu_layers=options.n_gpu_layers,
                logits_all=options.logits_all,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as err:
            raise ModelFileError(
                options.model_path,
                f"could not be loaded by llama.cpp: {_LOG.reason()}",
                "Pick a GGUF chat model of an architecture this llama.cpp build supports (Settings or --model PATH).",
            ) from err
        self._format = self._chat_formatter()
        vocab = self._llm._model.vocab
        self._is_eog = lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token))

    @property
    def context_size(self) -> int:
        """The context window the model was loaded with."""
        return self._llm.n_ctx()

    @property
    def context_used(self) -> int:
        """Tokens now in the KV cache: the conversation the model last saw."""
        return self._llm.n_tokens

    def _chat_formatter(self) -> Callable[..., llama_chat_format.ChatFormatterResponse]:
        """Serves through the GGUF's own template, as the model was trained; a named format only if asked or absent."""
        if self.info.chat_template and not self.options.chat_format:
            llm = self._llm
            special = llm._model.token_get_text
            return llama_chat_format.Jinja2ChatFormatter(
                template=self.info.chat_template,
                eos_token=special(llm.token_eos()) if llm.token_eos() != -1 else "",
                bos_token=special(llm.token_bos()) if llm.token_bos() != -1 else "",
                stop_token_ids=[llm.token_eos()],
            )
        name = self.options.chat_format or FALLBACK_CHAT_FORMATS.get(self.info.architecture, DEFAULT_FALLBACK_FORMAT)
        formatter = getattr(llama_chat_format, f"format_{name}", None)
        if formatter is None:
            raise EngineError(f"Unknown chat format '{name}'. Clear the chat format in Settings to use the model's own.")
        return formatter

    def tokenize_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The exact tokens the model reads for this conversation, ending where the assistant speaks."""
        result = self._format(messages=list(messages))
        return self._llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)

    def _fit(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Drops the oldest turns (never the system prompt or the last message) until the prompt leaves room to answer."""
        head = [m for m in messages[:1] if m["role"] == "system"]
        rest = list(messages[len(head):])
        limit = self.context_size - MIN_ANSWER_TOKENS
        tokens = self.tokenize_chat(head + rest)
        while len(tokens) > limit and len(rest) > 1:
            rest = rest[1:]
            tokens = self.tokenize_chat(head + rest)
        if len(tokens) > limit:
            raise EngineError(
                f"The message needs {len(tokens)} tokens but the context holds {self.context_size}. "
                "Shorten it or raise the context size in Settings."
            )
        return tokens

    def chat(
        self,
        messages: Sequence[ChatMessage],
        params: SamplingParams,
        on_text: Callable[[str], None] = lambda _text: None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Streams one answer through on_text; setting cancel stops it after the current token."""
        llm = self._llm
        tokens = self._fit(messages)
        reused = common_prefix(llm._input_ids[: llm.n_tokens].tolist(), tokens)
        budget = min(params.max_tokens, self.context_size - len(tokens))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        generated = 0
        finish = "length"
        start = time.perf_counter()
        first = start
        for token in llm.generate(tokens, temp=params.temperature, top_p=params.top_p, reset=True):
            if generated == 0:
                first = time.perf_counter()
            if self._is_eog(token):
                finish = "stop"
                break
            generated += 1
            piece = decoder.decode(llm.detokenize([token]))
            if piece:
                pieces.append(piece)
                on_text(piece)
            if cancel is not None and cancel.is_set():
                finish = "stopped"
                break
            if generated >= budget:
                break
        tail = decoder.decode(b"", final=True)
        if tail:
            pieces.append(tail)
            on_text(tail)
        end = time.perf_counter()
        decode_s = end - first
        return GenerationResult(
            text="".join(pieces),
            finish_reason=finish,
            prompt_tokens=len(tokens),
            reused_tokens=reused,
            generated_tokens=generated,
            ttft_s=first - start,
            decode_tok_s=(generated - 1) / decode_s if generated > 1 and decode_s > 0 else 0.0,
            total_s=end - start,
            context_used=llm.n_tokens,
        )

    def set_seed(self, seed: int) -> None:
        """Makes the next sampled answer reproducible (dreams sample k answers per prompt)."""
        self._llm.set_seed(seed)

    def perplexity(self, texts: Sequence[str]) -> float:
        """Perplexity over plain texts (each from a fresh context): the forgetting measure that needs no answers."""
        if not self.options.logits_all:
            raise EngineError("perplexity needs a model loaded with logits_all=True")
        llm = self._llm
        total_nll = 0.0
        count = 0
        for text in texts:
            tokens = llm.tokenize(text.encode("utf-8"), add_bos=True)[: self.context_size]
            llm.reset()
            llm.eval(tokens)
            logits = np.asarray(llm.scores[: len(tokens) - 1], dtype=np.float64)
            peak = logits.max(axis=1, keepdims=True)
            log_norm = np.log(np.exp(logits - peak).sum(axis=1)) + peak[:, 0]
            total_nll += float((log_norm - logits[np.arange(len(tokens) - 1), tokens[1:]]).sum())
            count += len(tokens) - 1
        llm.reset()
        return math.exp(total_nll / max(count, 1))

    def close(self) -> None:
        """Frees the model's memory now rather than whenever the garbage collector runs."""
        self._llm.close()
