"""What a model will cost in memory before it is loaded, read from safetensors headers alone.

A safetensors file starts with an 8-byte little-endian header length and a JSON header listing every
tensor's dtype and shape, so the bytes a model takes once loaded in the target dtype are known without
reading a tensor: floating-point tensors take ``numel * target element size``, others their own size.
The cache uses this to evict *before* loading (docs/models.md, "Cache and memory").
"""

from __future__ import annotations

import json
import struct
from math import prod
from pathlib import Path

FLOAT_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1}
OTHER_DTYPES = {"I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1, "U16": 2, "U32": 4, "U64": 8}
MAX_HEADER = 100 << 20


def safetensors_bytes(path: Path, float_size: int) -> int:
    """Bytes the tensors of ``path`` take loaded with floats of ``float_size`` bytes (4: float32, 2: fp16)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length > MAX_HEADER:
            raise ValueError(f"{path.name}: safetensors header of {length} bytes")
        header = json.loads(f.read(length))
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        numel = prod(info["shape"])
        dtype = info["dtype"]
        total += numel * (float_size if dtype in FLOAT_DTYPES else OTHER_DTYPES.get(dtype, 4))
    return total


def _component_files(folder: Path) -> list[Path]:
    """The weights diffusers would load from one component folder: the plain files, else the fp16 variant."""
    files = sorted(folder.glob("*.safetensors"))
    plain = [f for f in files if f.name.count(".") == 1]
    return plain or [f for f in files if ".fp16." in f.name]


def folder_bytes(folder: Path, components: tuple[str, ...], float_size: int) -> int:
    """Loaded bytes of a diffusers folder's ``components`` ("" for the folder itself, a ControlNet)."""
    total = 0
    for comp in components:
        sub = folder / comp if comp else folder
        if sub.is_dir():
            total += sum(safetensors_bytes(f, float_size) for f in _component_files(sub))
    return total


def estimate_bytes(path: Path | None, components: tuple[str, ...], float_size: int) -> int | None:
    """Loaded bytes of a model at ``path`` (a .safetensors file or a diffusers folder), or None when
    there is nothing on disk to read yet (builtins, hub models still to download) or it cannot be read."""
    if path is None:
        return None
    try:
        if path.is_file():
            return safetensors_bytes(path, float_size)
        if path.is_dir():
            return folder_bytes(path, components, float_size) or None
    except (OSError, ValueError, KeyError, struct.error):
        return None
    return None
