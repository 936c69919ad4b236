"""Loads the very model the app runs from its GGUF: fp32 weights dequantized once and cached, and its tokenizer."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from desktop.modelfile import ModelInfo, inspect_gguf
from trainer.errors import BadInput

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3")
FINGERPRINT_SPAN = 1 << 20
"""Bytes hashed at each end of the file; with size and mtime that tells model files apart cheaply."""
CACHE_ENTRIES_KEPT = 2
"""Dequantized models kept on disk (an fp32 copy is ~4x a 8-bit GGUF): this one and the previous generation."""
COMPLETE_MARK = "complete"

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()


class UnsupportedModel(BadInput):
    """A GGUF whose architecture the trainer cannot train and export back to llama.cpp."""


@dataclass
class Base:
    """The model to train on and what the exporter needs to know about the GGUF it came from."""

    path: Path
    info: ModelInfo
    fingerprint: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    from_cache: bool
    load_s: float

    @property
    def architecture(self) -> str:
        """llama.cpp's name for the architecture, as the GGUF states it."""
        return self.info.architecture

    @property
    def pad_id(self) -> int:
        """The token padding uses; it never carries loss and no real token attends to it."""
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0


def cache_root() -> Path:
    """~/.cache/nightschool, or under XDG_CACHE_HOME when set: the trainer's caches live below it."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nightschool"


def default_cache_dir() -> Path:
    """Dequantized weights, kept so the next run skips the dequantization."""
    return cache_root() / "dequant"


def pick_device() -> tuple[torch.device, torch.dtype]:
    """CUDA in bf16 when torch sees a GPU; otherwise CPU in fp32 (bf16 is 37-50x slower on CPUs without it)."""
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), torch.float32


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512_BF16 or AMX), as /proc/cpuinfo says; elsewhere, no."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def fingerprint(path: Path) -> str:
    """Identifies a model file by size, mtime and the bytes at both ends, without reading gigabytes."""
    stat = path.stat()
    digest = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    with path.open("rb") as handle:
        digest.update(handle.read(FINGERPRINT_SPAN))
        handle.seek(max(0, stat.st_size - FINGERPRINT_SPAN))
        digest.update(handle.read(FINGERPRINT_SPAN))
    return digest.hexdigest()[:32]


def _dequantize_into(path: Path, folder: Path) -> None:
    """Writes the GGUF's tokenizer and dequantized fp32 weights to folder in transformers' own format."""
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model while it still looks quantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / COMPLETE_MARK).write_text(str(path), encoding="utf-8")


def _evict(cache_dir: Path, keep: Path) -> None:
    """Removes the least recently used entries beyond CACHE_ENTRIES_KEPT, never keep itself."""
    entries = sorted((p for p in cache_dir.iterdir() if (p / COMPLETE_MARK).exists()), key=lambda p: p.stat().st_mtime)
    for entry in [p for p in entries if p != keep][: max(0, len(entries) - CACHE_ENTRIES_KEPT)]:
        shutil.rmtree(entry, ignore_errors=True)


def cached_weights(path: Path, cache_dir: Path, key: str) -> tuple[Path, bool]:
    """The folder holding this GGUF in transformers' format, made on first use; True when it already existed."""
    entry = cache_dir / key
    if (entry / COMPLETE_MARK).exists():
        os.utime(entry)
        return entry, True
    cache_dir.mkdir(parents=True, exist_ok=True)
    building = cache_dir / f".{key}.building"
    shutil.rmtree(building, ignore_errors=True)  # what a killed load left behind
    try:
        _dequantize_into(path, building)
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(building, entry)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    _evict(cache_dir, entry)
    return entry, False


def load_base(path: Path, cache_dir: Path | None = None) -> Base:
    """Loads the GGUF for training; the first load of a file dequantizes it (slow), later ones read the cache."""
    started = time.perf_counter()
    path = Path(path).resolve()
    info = inspect_gguf(path)
    if info.architecture not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModel(
            f"Model file '{path}' is a {info.architecture} model; the trainer supports {', '.join(SUPPORTED_ARCHITECTURES)}."
        )
    key = fingerprint(path)
    folder, from_cache = cached_weights(path, cache_dir or default_cache_dir(), key)
    device, dtype = pick_device()
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device)
    model.config.use_cache = False
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return Base(path, info, key, model, tokenizer, device, from_cache, time.perf_counter() - started)
