"""The engine on the real default model: streaming, stopping, KV reuse, context limits, bad model files."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from gguf import GGUFWriter
import numpy as np

from desktop.engine import Engine, EngineError, LoadOptions, SamplingParams
from desktop.modelfile import ModelFileError

from conftest import GREEDY

CAPITAL = [{"role": "user", "content": "What is the capital of Japan?"}]


def test_answer_streams_in_pieces_that_add_up(engine):
    pieces: list[str] = []
    result = engine.chat(CAPITAL, GREEDY, pieces.append)
    assert len(pieces) > 3
    assert "".join(pieces) == result.text
    assert "Tokyo" in result.text
    assert result.finish_reason == "stop"
    assert result.generated_tokens >= len(pieces) - 1
    assert result.decode_tok_s > 0


def test_the_gguf_chat_template_is_used(engine):
    tokens = engine.tokenize_chat(CAPITAL)
    text = engine._llm.detokenize(tokens, special=True).decode()
    assert text.startswith("<|im_start|>system")
    assert text.endswith("<|im_start|>assistant\n")


def test_stop_ends_the_answer_between_tokens(engine):
    cancel = threading.Event()
    seen: list[str] = []

    def on_text(piece: str) -> None:
        seen.append(piece)
        if len(seen) == 3:
            cancel.set()

    story = [{"role": "user", "content": "Tell me a long story about a dragon and a knight."}]
    result = engine.chat(story, SamplingParams(temperature=0.7, max_tokens=300), on_text, cancel)
    assert result.finish_reason == "stopped"
    assert 3 <= result.generated_tokens <= 4
    assert result.text == "".join(seen)


def test_follow_up_turn_reuses_the_cached_prefix(engine):
    first = engine.chat(CAPITAL, GREEDY)
    follow_up = CAPITAL + [
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "And the capital of England?"},
    ]
    second = engine.chat(follow_up, GREEDY)
    assert second.reused_tokens >= first.prompt_tokens
    assert second.prompt_tokens - second.reused_tokens < 20
    assert "London" in second.text


def test_token_limit_ends_with_length(engine):
    result = engine.chat(CAPITAL, replace(GREEDY, max_tokens=3))
    assert result.finish_reason == "length"
    assert result.generated_tokens == 3


def test_long_history_drops_oldest_turns_but_keeps_the_question(model_path):
    small = Engine(LoadOptions(model_path=model_path, n_ctx=256, n_threads=2))
    try:
        history = []
        for i in range(12):
            history += [
                {"role": "user", "content": f"Remember the number {i} and a few more words to fill space."},
                {"role": "assistant", "content": f"I will remember {i}, together with the words."},
            ]
        messages = [{"role": "system", "content": "Be brief."}] + history + CAPITAL
        result = small.chat(messages, replace(GREEDY, max_tokens=8))
        assert result.prompt_tokens <= 256
        assert result.generated_tokens > 0
        with pytest.raises(EngineError, match="context"):
            small.chat([{"role": "user", "content": "word " * 400}], GREEDY)
    finally:
        small.close()


def test_missing_model_names_the_file(tmp_path):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelFileError, match="nope.gguf") as caught:
        Engine(LoadOptions(model_path=missing))
    assert "does not exist" in str(caught.value)


def test_truncated_model_is_refused_before_llama_cpp_sees_it(tmp_path, model_path):
    cut = tmp_path / "cut.gguf"
    with open(model_path, "rb") as source:
        cut.write_bytes(source.read(model_path.stat().st_size // 3))
    with pytest.raises(ModelFileError, match="truncated"):
        Engine(LoadOptions(model_path=cut))


def test_non_gguf_file_is_refused(tmp_path):
    fake = tmp_path / "notes.gguf"
    fake.write_text("these are my notes, not a model")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        Engine(LoadOptions(model_path=fake))


def test_unsupported_architecture_reports_llama_cpp_reason(tmp_path):
    path = tmp_path / "alien.gguf"
    writer = GGUFWriter(str(path), "alienformer")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelFileError) as caught:
        Engine(LoadOptions(model_path=path))
    message = str(caught.value)
    assert "alien.gguf" in message
    assert "unknown model architecture" in message
    assert "Pick a GGUF" in message


def test_perplexity_prefers_natural_text(model_path, engine):
    scorer = Engine(LoadOptions(model_path=model_path, n_ctx=256, n_threads=2, logits_all=True))
    try:
        natural = "The cat sat on the mat and looked out of the window at the birds in the garden."
        shuffled = " ".join(sorted(natural.split()))
        assert 1.0 < scorer.perplexity([natural]) < scorer.perplexity([shuffled])
    finally:
        scorer.close()
    with pytest.raises(EngineError, match="logits_all"):
        engine.perplexity(["anything"])
