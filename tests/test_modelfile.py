"""Tests for desktop.modelfile: the default model, tiny GGUFs written here, and broken files of every kind."""

from __future__ import annotations

from importlib import metadata as importlib_metadata
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType, LlamaFileType

from desktop.modelfile import ModelFileError, ModelInfo, default_model_path, inspect_gguf

HEADER_PREFIX_BYTES = 1_000
Q8_0_ROWS = 4
Q8_0_ROW_BYTES = 68  # 64 values: two Q8_0 blocks of 34 bytes
NORM_VALUES = 128
EMBED_SHAPE = (2, 32)
TINY_PARAMS = NORM_VALUES + EMBED_SHAPE[0] * EMBED_SHAPE[1] + Q8_0_ROWS * 64
TINY_CONTEXT = 4096
TINY_LAYERS = 2
VERSION_OFFSET = 4
BAD_VERSION = 99
UNKNOWN_TENSOR_TYPE = 250
CORRUPT_BYTE = 0xFF


def write_tiny_gguf(path: Path, file_type: int | None = LlamaFileType.MOSTLY_Q4_K_M) -> Path:
    """Writes a qwen3 GGUF whose 2-D weights are mostly Q8_0 by bytes but mostly F32 when 1-D tensors count."""
    writer = gguf.GGUFWriter(path, "qwen3")
    writer.add_name("Tiny Qwen")
    writer.add_context_length(TINY_CONTEXT)
    writer.add_block_count(TINY_LAYERS)
    if file_type is not None:
        writer.add_file_type(file_type)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(NORM_VALUES, np.float32))
    writer.add_tensor("token_embd.weight", np.ones(EMBED_SHAPE, np.float32))
    writer.add_tensor("output.weight", np.ones((Q8_0_ROWS, Q8_0_ROW_BYTES), np.uint8), raw_dtype=GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def copy_prefix(source: Path, target: Path, n_bytes: int) -> Path:
    """Copies only the first n_bytes of source, as an interrupted download would leave them."""
    with source.open("rb") as src:
        target.write_bytes(src.read(n_bytes))
    return target


def refused(path: Path, reason_part: str) -> ModelFileError:
    """Asserts inspect_gguf refuses path with a message naming the file and containing reason_part."""
    with pytest.raises(ModelFileError) as caught:
        inspect_gguf(path)
    err = caught.value
    assert err.path == path
    assert reason_part in err.reason
    assert str(err) == f"Model file '{path}' {err.reason}. {err.hint}"
    assert err.hint
    return err


@pytest.fixture(scope="module")
def default_model() -> Path:
    return default_model_path()


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_tiny_gguf(tmp_path / "tiny-qwen.gguf")


def test_default_model_is_smollm2_q4_1(default_model: Path) -> None:
    info = inspect_gguf(default_model)
    assert default_model.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert info.path == default_model
    assert info.architecture == "llama"
    assert info.quantization == "Q4_1"
    assert info.context_length == 8192
    assert info.n_layers == 30
    assert 130e6 < info.n_params < 140e6
    assert info.size_bytes == default_model.stat().st_size
    assert info.chat_template is not None and "im_start" in info.chat_template
    assert info.name and info.name != default_model.stem


def test_metadata_holds_scalars_but_not_arrays(default_model: Path) -> None:
    metadata = inspect_gguf(default_model).metadata
    assert metadata["general.architecture"] == "llama"
    assert metadata["llama.block_count"] == 30
    assert metadata["tokenizer.ggml.add_bos_token"] is False
    assert "tokenizer.ggml.tokens" not in metadata
    assert "tokenizer.ggml.merges" not in metadata


def test_default_model_path_when_package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> importlib_metadata.Distribution:
        raise importlib_metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib_metadata, "distribution", not_installed)
    with pytest.raises(ModelFileError) as caught:
        default_model_path()
    assert caught.value.reason == "is not installed"
    assert "scripts/setup.sh" in caught.value.hint
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    err = refused(tmp_path / "nope.gguf", "does not exist")
    assert "--model PATH" in err.hint


def test_directory(tmp_path: Path) -> None:
    refused(tmp_path, "is a directory")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.touch()
    refused(path, "is empty")


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("hello, this is not a model\n")
    err = refused(path, "is not a GGUF file")
    assert err.reason == "is not a GGUF file (it starts with b'hello, t')"


def test_unsupported_version(tiny: Path) -> None:
    data = bytearray(tiny.read_bytes())
    data[VERSION_OFFSET : VERSION_OFFSET + 4] = BAD_VERSION.to_bytes(4, "little")
    tiny.write_bytes(data)
    refused(tiny, f"uses GGUF version {BAD_VERSION}")


def test_header_truncated(default_model: Path, tmp_path: Path) -> None:
    path = copy_prefix(default_model, tmp_path / "head.gguf", HEADER_PREFIX_BYTES)
    refused(path, f"is truncated: its header runs past the end of the file ({HEADER_PREFIX_BYTES} bytes found)")


def test_data_truncated(default_model: Path, tmp_path: Path) -> None:
    full = default_model.stat().st_size
    half = full // 2
    path = copy_prefix(default_model, tmp_path / "half.gguf", half)
    refused(path, f"is truncated: {full} bytes expected, {half} found")


def test_tiny_qwen3(tiny: Path) -> None:
    info = inspect_gguf(tiny)
    assert isinstance(info, ModelInfo)
    assert info.name == "Tiny Qwen"
    assert info.architecture == "qwen3"
    assert info.quantization == "Q4_K_M"
    assert info.context_length == TINY_CONTEXT
    assert info.n_layers == TINY_LAYERS
    assert info.n_params == TINY_PARAMS
    assert info.size_bytes == tiny.stat().st_size
    assert info.chat_template is None
    assert info.metadata["general.name"] == "Tiny Qwen"


@pytest.mark.parametrize("file_type", [None, LlamaFileType.GUESSED])
def test_quantization_from_2d_tensors_without_file_type(tmp_path: Path, file_type: int | None) -> None:
    info = inspect_gguf(write_tiny_gguf(tmp_path / "tiny.gguf", file_type=file_type))
    assert info.metadata.get("general.file_type") == file_type
    assert info.quantization == "Q8_0"


def test_all_f32_file_type_reads_as_f32(tmp_path: Path) -> None:
    info = inspect_gguf(write_tiny_gguf(tmp_path / "tiny.gguf", file_type=LlamaFileType.ALL_F32))
    assert info.quantization == "F32"


def test_name_falls_back_to_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "nameless.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tensor("output.weight", np.ones(EMBED_SHAPE, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    info = inspect_gguf(path)
    assert info.name == "nameless"
    assert (info.context_length, info.n_layers, info.quantization) == (0, 0, "F32")


def test_unknown_tensor_type(tiny: Path) -> None:
    data = bytearray(tiny.read_bytes())
    name = b"output.weight"
    n_dims = 2
    type_at = data.index(name) + len(name) + 4 + 8 * n_dims
    assert int.from_bytes(data[type_at : type_at + 4], "little") == GGMLQuantizationType.Q8_0
    data[type_at : type_at + 4] = UNKNOWN_TENSOR_TYPE.to_bytes(4, "little")
    tiny.write_bytes(data)
    refused(tiny, f"has tensor 'output.weight' of unknown type {UNKNOWN_TENSOR_TYPE}")


def test_every_prefix_short_of_the_last_tensor_is_refused(tiny: Path, tmp_path: Path) -> None:
    data = tiny.read_bytes()
    data_end = len(data.rstrip(b"\0"))  # the last tensor holds no zero bytes; only alignment padding follows it
    path = tmp_path / "prefix.gguf"
    for n_bytes in range(data_end):
        path.write_bytes(data[:n_bytes])
        with pytest.raises(ModelFileError, match="is (empty|truncated|not a GGUF file)"):
            inspect_gguf(path)
    path.write_bytes(data[:data_end])
    assert inspect_gguf(path).size_bytes == data_end


def test_corrupt_header_bytes_raise_only_model_file_error(tiny: Path, tmp_path: Path) -> None:
    data = tiny.read_bytes()
    header_end = data.index(b"output.weight") + len(b"output.weight")
    path = tmp_path / "corrupt.gguf"
    refusals = 0
    for at in range(header_end):
        corrupt = bytearray(data)
        corrupt[at] = CORRUPT_BYTE
        path.write_bytes(corrupt)
        try:
            inspect_gguf(path)
        except ModelFileError as err:
            assert str(path) in str(err)
            refusals += 1
    assert refusals > header_end // 2
