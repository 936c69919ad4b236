"""Writes the next generation as one GGUF: base weights plus every adapter's update, in F16 or Q8_0.

Never 4-bit: the update is ~0.5 % of a weight's norm and 4-bit re-quantization keeps only ~6 % of it.
Merging always starts from the base file's own weights plus the sum of updates, so generations do not
pile up re-quantization error. Tensors no adapter touches are copied byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, Keys, LlamaFileType
from gguf.quants import dequantize, quantize

from trainer.atomic import atomic_path
from trainer.export_gguf import Adapter, AdapterError

MERGED_TYPES = {"f16": GGMLQuantizationType.F16, "q8_0": GGMLQuantizationType.Q8_0}
FILE_TYPES = {"f16": LlamaFileType.MOSTLY_F16, "q8_0": LlamaFileType.MOSTLY_Q8_0}
WRITTEN_BY_WRITER = (Keys.General.ARCHITECTURE, Keys.General.FILE_TYPE, Keys.General.ALIGNMENT)
WEIGHT_SUFFIX = ".weight"


def _round_trip(weights: np.ndarray, qtype: GGMLQuantizationType) -> tuple[np.ndarray, np.ndarray]:
    """The bytes to write for weights in qtype, and the values llama.cpp will read back from them."""
    if qtype == GGMLQuantizationType.F16:
        stored = weights.astype(np.float16)
        return stored, stored.astype(np.float32)
    stored = quantize(weights, qtype)
    return stored, dequantize(stored, qtype)


def _target_type(merge_type: str, row_length: int) -> GGMLQuantizationType:
    """The requested type, or F16 for rows Q8_0's 32-value blocks do not divide."""
    qtype = MERGED_TYPES[merge_type]
    block, _ = GGML_QUANT_SIZES[qtype]
    return qtype if row_length % block == 0 else GGMLQuantizationType.F16


def _copy_metadata(reader: GGUFReader, writer: GGUFWriter, merge_type: str) -> None:
    """Every key of the base (tokenizer, template, hyperparameters) except those the writer sets itself."""
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in WRITTEN_BY_WRITER:
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub_type)
    writer.add_file_type(FILE_TYPES[merge_type])


def merge(base_path: Path, adapters: list[Adapter], out_path: Path, merge_type: str) -> dict:
    """Writes base + Σ adapters to out_path and measures how much of the update the stored type keeps.

    update_survival is <E, Δ> / <Δ, Δ>, where Δ is the intended update and E what the written file adds to
    the base's weights; update_rel_error is |E - Δ| / |Δ|.
    """
    reader = GGUFReader(base_path)
    architecture = reader.fields[Keys.General.ARCHITECTURE].contents()
    base_names = {t.name.removesuffix(WEIGHT_SUFFIX) for t in reader.tensors}
    for adapter in adapters:
        if adapter.architecture != architecture:
            raise AdapterError(f"a {adapter.architecture} adapter cannot merge into the {architecture} model '{base_path}'")
        missing = sorted(set(adapter.pairs) - base_names)
        if missing:
            raise AdapterError(f"the adapter's tensors {missing[:3]} are not in '{base_path}'")
    touched = set().union(*(adapter.pairs for adapter in adapters))

    writer = GGUFWriter(None, architecture)
    _copy_metadata(reader, writer, merge_type)
    plan = []
    for tensor in reader.tensors:
        base = tensor.name.removesuffix(WEIGHT_SUFFIX)
        shape = tuple(int(n) for n in reversed(tensor.shape))
        if base in touched:
            qtype = _target_type(merge_type, shape[-1])
            block, size = GGML_QUANT_SIZES[qtype]
            nbytes = int(np.prod(shape)) // block * size
        else:
            qtype, nbytes = tensor.tensor_type, tensor.n_bytes
        writer.add_tensor_info(tensor.name, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
        plan.append((tensor, base, qtype))

    along = squared = error = 0.0
    with atomic_path(out_path) as temp:
        writer.write_header_to_file(temp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for tensor, base, qtype in plan:
            if base not in touched:
                writer.write_tensor_data(np.asarray(tensor.data))
                continue
            weights = dequantize(tensor.data, tensor.tensor_type).astype(np.float32, copy=False)
            delta = sum(adapter.delta(base) for adapter in adapters if base in adapter.pairs)
            stored, read_back = _round_trip(weights + delta, qtype)
            effective = (read_back - weights).astype(np.float64)
            along += float(np.sum(effective * delta))
            squared += float(np.sum(delta.astype(np.float64) ** 2))
            error += float(np.sum((effective - delta) ** 2))
            writer.write_tensor_data(stored)
        writer.close()
    return {
        "type": merge_type,
        "tensors_merged": len(touched),
        "update_survival": along / squared if squared else 1.0,
        "update_rel_error": (error / squared) ** 0.5 if squared else 0.0,
    }
