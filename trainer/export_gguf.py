"""Moves LoRA weights between peft and llama.cpp's GGUF adapter format, in llama.cpp's tensor layout.

transformers un-permutes llama's attn_q/attn_k rows when it loads a GGUF (llama.cpp's converter permuted
them for its rope kernel); an adapter's lora_B for those tensors must be permuted back, or it still answers
taught questions but its logits are off. qwen2, qwen3 and gemma3 are stored unpermuted (transformers'
only q/k processor is llama's), and gemma3's norm offset never touches the projections LoRA adapts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np
import torch
from gguf import MODEL_ARCH_NAMES, GGUFReader, GGUFType, GGUFWriter, Keys, get_tensor_name_map
from peft.tuners.lora import LoraLayer
from transformers import PreTrainedModel
from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, LlamaTensorProcessor

from trainer.atomic import atomic_path
from trainer.errors import BadInput

LORA_A, LORA_B = ".weight.lora_a", ".weight.lora_b"
ADAPTER_NAME = "default"


class AdapterError(BadInput):
    """An adapter llama.cpp would not load, or one of another architecture or shape."""


@dataclass
class Adapter:
    """LoRA pairs in llama.cpp's layout, keyed by base tensor name ("blk.0.attn_q"): A is (r, in), B is (out, r)."""

    architecture: str
    alpha: float
    pairs: dict[str, tuple[np.ndarray, np.ndarray]]

    @property
    def rank(self) -> int:
        """The LoRA rank (all pairs share it)."""
        return next(iter(self.pairs.values()))[0].shape[0]

    @property
    def scale(self) -> float:
        """alpha / rank, the factor llama.cpp applies to B·A."""
        return self.alpha / self.rank

    def delta(self, name: str) -> np.ndarray:
        """The update this adapter adds to base tensor name, in the GGUF's row order."""
        a, b = self.pairs[name]
        return self.scale * (b.astype(np.float32) @ a.astype(np.float32))


def permute_rows(rows: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter permutation of q/k output rows (its rope rotates neighbouring pairs, HF's rotates halves)."""
    return rows.reshape(n_head, 2, rows.shape[0] // n_head // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def unpermute_rows(rows: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of permute_rows, as transformers applies it when loading llama GGUFs."""
    return rows.reshape(n_head, rows.shape[0] // n_head // 2, 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def permuted_heads(architecture: str, model: PreTrainedModel) -> dict[str, int]:
    """Which GGUF projections transformers un-permuted for this architecture, and their head counts."""
    processor = TENSOR_PROCESSORS.get(architecture)
    if processor is None or not issubclass(processor, LlamaTensorProcessor):
        return {}
    config = model.config
    return {"attn_q": config.num_attention_heads, "attn_k": config.num_key_value_heads}


def gguf_names(architecture: str, model: PreTrainedModel) -> dict[str, str]:
    """transformers module name ("model.layers.0.self_attn.q_proj") -> GGUF tensor name ("blk.0.attn_q")."""
    arch = next((key for key, name in MODEL_ARCH_NAMES.items() if name == architecture), None)
    if arch is None:
        raise AdapterError(f"gguf does not know the architecture {architecture!r}")
    mapping = get_tensor_name_map(arch, model.config.num_hidden_layers)
    names = {}
    for module_name, _module in model.named_modules():
        gguf_name = mapping.get_name(module_name)
        if gguf_name is not None:
            names[module_name] = gguf_name
    return names


def _kind(gguf_name: str) -> str:
    """"blk.3.attn_q" -> "attn_q"."""
    return gguf_name.rsplit(".", 1)[-1]


def adapter_from_peft(model: PreTrainedModel, architecture: str, alpha: float) -> Adapter:
    """The trained LoRA pairs of a peft-wrapped model, in llama.cpp's layout."""
    names = gguf_names(architecture, model)
    heads = permuted_heads(architecture, model)
    pairs = {}
    for module_name, module in model.named_modules():
        if not isinstance(module, LoraLayer) or ADAPTER_NAME not in module.lora_A:
            continue
        gguf_name = names[module_name]
        a = module.lora_A[ADAPTER_NAME].weight.detach().float().cpu().numpy()
        b = module.lora_B[ADAPTER_NAME].weight.detach().float().cpu().numpy()
        if _kind(gguf_name) in heads:
            b = permute_rows(b, heads[_kind(gguf_name)])
        pairs[gguf_name] = (a, b)
    return Adapter(architecture, alpha, pairs)


def write_adapter(path: Path, adapter: Adapter) -> None:
    """Writes a GGUF LoRA adapter llama.cpp loads (convert_lora_to_gguf.py's keys; F32 A as [in, r], B as [r, out])."""
    writer = GGUFWriter(None, adapter.architecture)  # writes general.architecture itself
    writer.add_string(Keys.General.TYPE, GGUFType.ADAPTER)
    writer.add_string(Keys.Adapter.TYPE, "lora")
    writer.add_float32(Keys.Adapter.LORA_ALPHA, float(adapter.alpha))
    for name, (a, b) in adapter.pairs.items():
        writer.add_tensor(name + LORA_A, np.ascontiguousarray(a, dtype=np.float32))
        writer.add_tensor(name + LORA_B, np.ascontiguousarray(b, dtype=np.float32))
    with atomic_path(path) as temp:
        writer.write_header_to_file(temp)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()


def read_adapter(path: Path) -> Adapter:
    """Reads a GGUF LoRA adapter (ours or llama.cpp's converter's) back into memory."""
    try:
        reader = GGUFReader(path)
    except (OSError, ValueError) as err:
        raise AdapterError(f"adapter '{path}' is not a readable GGUF file: {err}") from err
    fields = {name: reader.fields[name].contents() for name in reader.fields if not name.startswith("GGUF.")}
    if fields.get(Keys.General.TYPE) != GGUFType.ADAPTER or fields.get(Keys.Adapter.TYPE) != "lora":
        raise AdapterError(f"adapter '{path}' is not a GGUF LoRA adapter")
    tensors = {t.name: np.asarray(t.data, dtype=np.float32) for t in reader.tensors}
    pairs = {}
    for name, a in tensors.items():
        if name.endswith(LORA_A):
            base = name.removesuffix(LORA_A)
            if base + LORA_B not in tensors:
                raise AdapterError(f"adapter '{path}' has {name} without its lora_b")
            pairs[base] = (a, tensors[base + LORA_B])
    if not pairs:
        raise AdapterError(f"adapter '{path}' holds no LoRA tensors")
    return Adapter(fields[Keys.General.ARCHITECTURE], float(fields[Keys.Adapter.LORA_ALPHA]), pairs)


def fold_into(model: PreTrainedModel, adapter: Adapter, architecture: str) -> None:
    """Adds an earlier generation's update to the fp32 weights, so a new adapter trains on top of it."""
    if adapter.architecture != architecture:
        raise AdapterError(f"a {adapter.architecture} adapter cannot apply to a {architecture} model")
    modules = dict(model.named_modules())
    by_gguf = {gguf: modules[name] for name, gguf in gguf_names(architecture, model).items()}
    heads = permuted_heads(architecture, model)
    for name in adapter.pairs:
        if name not in by_gguf:
            raise AdapterError(f"the adapter's tensor {name} has no counterpart in the model")
        delta = adapter.delta(name)
        if _kind(name) in heads:
            delta = unpermute_rows(delta, heads[_kind(name)])
        weight = by_gguf[name].weight
        if tuple(weight.shape) != delta.shape:
            raise AdapterError(f"the adapter's {name} is {delta.shape}, the model's weight {tuple(weight.shape)}")
        with torch.no_grad():
            weight += torch.from_numpy(delta).to(weight.device, weight.dtype)


def verify_adapter(base_path: Path, adapter_path: Path) -> None:
    """Has llama.cpp itself load the adapter over the base; raises if it refuses (it would segfault later)."""
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = 0
    model = llama_cpp.llama_model_load_from_file(str(base_path).encode(), params)
    if not model:
        raise AdapterError(f"llama.cpp could not load the base model '{base_path}'")
    try:
        adapter = llama_cpp.llama_adapter_lora_init(model, str(adapter_path).encode())
        if not adapter:
            raise AdapterError(f"llama.cpp refused the adapter '{adapter_path}' for '{base_path}'")
        llama_cpp.llama_adapter_lora_free(adapter)
    finally:
        llama_cpp.llama_model_free(model)
