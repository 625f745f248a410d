"""What a ``.gguf`` file holds, from its header alone: tensor names, shapes and quantization types.

Pure standard library (no torch, no ``gguf`` package), so that the models-folder scanner lists GGUF
transformers even where the ``gguf`` package is missing (they are then listed as not runnable, with
that reason). Only the header is read, with buffered reads and bounds on every count and length: the
key/value metadata is skipped, the tensor infos are parsed, the tensor data (gigabytes) is never
touched. Format (little-endian; versions 2 and 3): ``GGUF``, u32 version, u64 tensor count, u64 kv
count, the kv pairs, then per tensor: string name, u32 n_dims, u64 dims (innermost first), u32 ggml
type, u64 offset. https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import importlib.util
import os
import struct
from collections import Counter
from dataclasses import dataclass
from typing import BinaryIO

#: ggml tensor types by id (ggml.h's ``ggml_type``; tests check this against ``gguf.GGMLQuantizationType``).
GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
              10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
              17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
              24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0",
              35: "TQ2_0"}
# kv value types -> struct format of one scalar (8: string, 9: array are read apart)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 20
MAX_STRING = 1 << 24  # a tensor name or metadata string; real ones are under a few kB
MAX_DIMS = 8


class GgufHeaderError(ValueError):
    """Not a readable GGUF file (truncated, another format, an unknown value type)."""


@dataclass(frozen=True)
class GgufTensor:
    shape: tuple[int, ...]  # torch order (outermost first), as safetensors headers give them
    type_name: str  # "Q8_0", "F16", ... (or "type<id>" for one this table does not know)


def _read(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise GgufHeaderError("the file ends inside its GGUF header (truncated?)")
    return data


def _u(fh: BinaryIO, fmt: str) -> int:
    return struct.unpack("<" + fmt, _read(fh, struct.calcsize(fmt)))[0]


def _string(fh: BinaryIO) -> bytes:
    n = _u(fh, "Q")
    if n > MAX_STRING:
        raise GgufHeaderError(f"a GGUF string of {n} bytes is not plausible")
    return _read(fh, n)


def _skip_value(fh: BinaryIO, vtype: int) -> None:
    if vtype in _SCALARS:
        _read(fh, struct.calcsize(_SCALARS[vtype]))
    elif vtype == 8:
        _string(fh)
    elif vtype == 9:
        etype, count = _u(fh, "I"), _u(fh, "Q")
        if etype in _SCALARS:  # fixed size: seek past the lot
            size = struct.calcsize(_SCALARS[etype]) * count
            start = fh.tell()
            fh.seek(size, os.SEEK_CUR)
            if fh.tell() != start + size or size > os.fstat(fh.fileno()).st_size:
                raise GgufHeaderError("the file ends inside its GGUF header (truncated?)")
        else:
            if count > MAX_TENSORS * 4:
                raise GgufHeaderError(f"a GGUF array of {count} items is not plausible")
            for _ in range(count):
                _skip_value(fh, etype)
    else:
        raise GgufHeaderError(f"unknown GGUF value type {vtype}")


def read_gguf_tensors(path: str | os.PathLike) -> dict[str, GgufTensor]:
    """Tensor name -> :class:`GgufTensor` from ``path``'s header; :class:`GgufHeaderError` if unreadable."""
    try:
        with open(path, "rb", buffering=1 << 16) as fh:
            if _read(fh, 4) != b"GGUF":
                raise GgufHeaderError("not a GGUF file (no GGUF magic)")
            version = _u(fh, "I")
            if version not in (2, 3):
                raise GgufHeaderError(f"GGUF version {version} is not supported (2 and 3 are; big-endian is not)")
            n_tensors, n_kv = _u(fh, "Q"), _u(fh, "Q")
            if n_tensors > MAX_TENSORS or n_kv > MAX_KV:
                raise GgufHeaderError(f"{n_tensors} tensors / {n_kv} metadata keys are not plausible")
            for _ in range(n_kv):
                _string(fh)
                _skip_value(fh, _u(fh, "I"))
            tensors = {}
            for _ in range(n_tensors):
                name = _string(fh).decode("utf-8", "replace")
                n_dims = _u(fh, "I")
                if n_dims > MAX_DIMS:
                    raise GgufHeaderError(f"tensor {name} has {n_dims} dimensions")
                dims = struct.unpack(f"<{n_dims}Q", _read(fh, 8 * n_dims))
                type_id = _u(fh, "I")
                _u(fh, "Q")  # offset into the data section: not needed to classify
                tensors[name] = GgufTensor(tuple(int(d) for d in reversed(dims)),
                                           GGML_TYPES.get(type_id, f"type{type_id}"))
            return tensors
    except OSError as exc:
        raise GgufHeaderError(f"cannot be read: {exc}") from exc


def gguf_package_missing() -> bool:
    """Whether the ``gguf`` package, which diffusers needs to load a GGUF's quantized weights, is absent
    (reading headers, here, does not need it)."""
    return importlib.util.find_spec("gguf") is None


def quantization(tensors: dict[str, GgufTensor]) -> str:
    """The file's quantization as users name it: the type holding most weights ("Q8_0", "Q4_K", "F16"),
    counted by elements, among tensors of 2 or more dimensions (biases and norms stay F32 in every file)."""
    counts: Counter[str] = Counter()
    for t in tensors.values():
        if len(t.shape) >= 2:
            n = 1
            for d in t.shape:
                n *= d
            counts[t.type_name] += n
    return counts.most_common(1)[0][0] if counts else ""
