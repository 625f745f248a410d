"""Reading the correspondence part (docs/protocol.md, "Correspondence part") into numpy arrays.

The add-on writes it with ``addon/core/sync_views.encode``; the backend keeps its own reader (it does not
import the add-on), and ``tests/backend/test_sync_fusion.py`` checks the two agree byte for byte.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass

import numpy as np

MAGIC = b"SCCR"
VERSION = 1
CONTENT_TYPE = "application/x-scenecast-correspondence"
#: Largest total of pixels over all views and levels a part may hold (8 views of 2048², two levels).
MAX_PIXELS = 8 * 2 * 2048 * 2048


@dataclass
class Level:
    """One grid: ``index`` (N, H, W) int32 (-1: no texel), ``weight`` (N, H, W) float32, ``texels`` M."""

    name: str
    index: np.ndarray
    weight: np.ndarray
    texels: int


@dataclass
class Correspondence:
    views: int
    power: float
    levels: dict[str, Level]


def _pad8(n: int) -> int:
    return (-n) % 8


def parse(data: bytes, max_pixels: int = MAX_PIXELS) -> Correspondence:
    """The part's levels by name; ``ValueError`` with a message a client can act on otherwise."""
    if len(data) < 12 or data[:4] != MAGIC:
        raise ValueError("the correspondence part is not one (it must start with b'SCCR'; see docs/protocol.md)")
    version, hlen = struct.unpack("<II", data[4:12])
    if version != VERSION:
        raise ValueError(f"correspondence format version {version}; this backend reads {VERSION}")
    try:
        header = json.loads(data[12:12 + hlen])
        views = int(header["views"])
        power = float(header.get("power", 1.0))
        shapes = [(str(m["name"]), int(m["height"]), int(m["width"]), int(m["texels"])) for m in header["levels"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"bad correspondence header: {exc}") from exc
    if views < 1 or any(h < 1 or w < 1 or t < 0 for _, h, w, t in shapes):
        raise ValueError("correspondence header has empty views or levels")
    total = sum(views * h * w for _, h, w, _ in shapes)
    if total > max_pixels:
        raise ValueError(f"correspondence holds {total} pixels, more than the {max_pixels} allowed")
    payload = data[12 + hlen:]
    if header.get("compression") == "zlib":
        d = zlib.decompressobj()
        try:
            payload = d.decompress(payload, total * 6 + 64)
        except zlib.error as exc:
            raise ValueError(f"correspondence payload does not decompress: {exc}") from exc
        if d.unconsumed_tail:
            raise ValueError("correspondence payload is larger than its header says")
    elif header.get("compression", "none") != "none":
        raise ValueError(f"unknown correspondence compression {header.get('compression')!r}")
    levels, at = {}, 0
    for name, h, w, texels in shapes:
        n = views * h * w
        arrays = []
        for dtype, size in (("<i4", 4), ("<f2", 2)):
            if at + n * size > len(payload):
                raise ValueError(f"correspondence payload ends inside level {name!r}")
            arrays.append(np.frombuffer(payload, dtype=dtype, count=n, offset=at).reshape(views, h, w))
            at += n * size + _pad8(n * size)
        index = arrays[0].astype(np.int32)
        if n and (int(index.max()) >= texels or int(index.min()) < -1):
            raise ValueError(f"level {name!r}: texel ids must be -1 or in [0, {texels})")
        levels[name] = Level(name, index, arrays[1].astype(np.float32), texels)
    return Correspondence(views, power, levels)
