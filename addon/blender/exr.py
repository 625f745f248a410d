"""Read the multilayer OpenEXR files Blender writes for our passes into numpy arrays.

Why a reader of our own: the ``bpy`` 4.2 wheel ships no ``OpenImageIO`` Python module (5.0's keeps
it in its bundled site-packages), and nothing may be pip-installed into Blender. Blender writes
exactly what ``passes.py`` asks for — scanline OpenEXR, single- or multi-part (5.0 writes one part
per pass), HALF/FLOAT/UINT channels, compression NONE (what we request), ZIPS or ZIP — and that
subset is ~150 lines of ``struct`` + ``zlib``. When ``OpenImageIO`` is importable (the Blender
application, or 5.0 with its bundled site-packages on ``sys.path``) ``read_exr`` uses it instead;
both give the same arrays (tests compare them).

No ``bpy`` here. Arrays come back with **row 0 = top of the image** (OpenEXR stores the top scan
line first — y grows downwards — and Blender writes the image upright), keyed by full channel name
as Blender writes them, e.g. ``"ViewLayer.Depth.Z"``, ``"ViewLayer.Normal.X"``.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np

from ..core.errors import ScenecastError

_MAGIC = 20000630
_TILED, _NON_IMAGE, _MULTIPART = 0x200, 0x800, 0x1000
_PIXEL_DTYPES: dict[int, np.dtype[Any]] = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
_COMPRESSION_NAMES = ("NONE", "RLE", "ZIPS", "ZIP", "PIZ", "PXR24", "B44", "B44A", "DWAA", "DWAB")
_LINES_PER_CHUNK = {0: 1, 2: 1, 3: 16}  # the compressions we decode


class ExrError(ScenecastError, ValueError):
    """The file is not an OpenEXR this reader understands (the message says what to change)."""


def read_exr(path: str) -> dict[str, np.ndarray]:
    """Every channel of a scanline EXR as (H, W) float32, row 0 top; keys are full channel names."""
    oiio = _openimageio()
    if oiio is not None:
        return read_exr_oiio(path, oiio)
    return read_exr_numpy(path)


def read_exr_oiio(path: str, oiio: Any = None) -> dict[str, np.ndarray]:
    """``read_exr`` through OpenImageIO (all parts of a multi-part file)."""
    oiio = oiio or _openimageio()
    if oiio is None:
        raise ExrError("OpenImageIO is not importable in this Python")
    inp = oiio.ImageInput.open(path)
    if not inp:
        raise ExrError(f"OpenImageIO cannot open {path}: {oiio.geterror()}")
    out: dict[str, np.ndarray] = {}
    try:
        subimage = 0
        while inp.seek_subimage(subimage, 0):
            spec = inp.spec()
            pixels = inp.read_image(subimage, 0, 0, spec.nchannels, oiio.FLOAT)
            if pixels is None:
                raise ExrError(f"OpenImageIO could not read {path}: {inp.geterror()}")
            pixels = np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width, spec.nchannels)
            for c, name in enumerate(spec.channelnames):
                out[name] = np.ascontiguousarray(pixels[:, :, c])
            subimage += 1
    finally:
        inp.close()
    return out


def read_exr_numpy(path: str) -> dict[str, np.ndarray]:
    """``read_exr`` with struct + zlib + numpy only (scanline; NONE, ZIPS or ZIP compression)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8 or struct.unpack_from("<i", data, 0)[0] != _MAGIC:
        raise ExrError(f"{path} is not an OpenEXR file")
    flags = struct.unpack_from("<I", data, 4)[0]
    if flags & (_TILED | _NON_IMAGE):
        raise ExrError(f"{path}: tiled or deep EXR; write scanline images (Blender's default)")
    pos = 8
    headers = []
    while True:
        header, pos = _read_header(data, pos)
        headers.append(header)
        if not flags & _MULTIPART:
            break
        if data[pos] == 0:  # an empty header ends the list of parts
            pos += 1
            break
    tables = []
    for header in headers:
        count = header["chunks"]
        tables.append(struct.unpack_from(f"<{count}Q", data, pos))
        pos += 8 * count
    out: dict[str, np.ndarray] = {}
    for part, (header, offsets) in enumerate(zip(headers, tables)):
        out.update(_read_part(data, part, header, offsets, bool(flags & _MULTIPART), path))
    return out


def _read_header(data: bytes, pos: int) -> tuple[dict[str, Any], int]:
    header: dict[str, Any] = {}
    while True:
        end = data.index(b"\0", pos)
        name = data[pos:end].decode("latin-1")
        pos = end + 1
        if not name:
            break
        end = data.index(b"\0", pos)
        kind = data[pos:end].decode("latin-1")
        size = struct.unpack_from("<i", data, end + 1)[0]
        value = data[end + 5 : end + 5 + size]
        pos = end + 5 + size
        if kind == "chlist":
            header["channels"] = _parse_channels(value)
        elif kind == "compression":
            header["compression"] = value[0]
        elif kind == "box2i" and name == "dataWindow":
            header["window"] = struct.unpack("<4i", value)
        elif kind == "int" and name == "chunkCount":
            header["chunkCount"] = struct.unpack("<i", value)[0]
    x0, y0, x1, y1 = header["window"]
    header["width"], header["height"] = x1 - x0 + 1, y1 - y0 + 1
    lines = _LINES_PER_CHUNK.get(header.get("compression", 0), 1)
    header["chunks"] = header.get("chunkCount", -(-header["height"] // lines))
    return header, pos


def _parse_channels(value: bytes) -> list[tuple[str, np.dtype[Any]]]:
    channels: list[tuple[str, np.dtype[Any]]] = []
    pos = 0
    while value[pos] != 0:
        end = value.index(b"\0", pos)
        name = value[pos:end].decode("utf-8")
        pixel_type, _linear, xs, ys = struct.unpack_from("<iB3xii", value, end + 1)
        if (xs, ys) != (1, 1):
            raise ExrError(f"channel {name} is subsampled; only full-resolution channels are read")
        channels.append((name, _PIXEL_DTYPES[pixel_type]))
        pos = end + 1 + 16
    return channels


def _read_part(
    data: bytes, part: int, header: dict[str, Any], offsets: tuple[int, ...], multipart: bool, path: str
) -> dict[str, np.ndarray]:
    compression = header.get("compression", 0)
    if compression not in _LINES_PER_CHUNK:
        name = _COMPRESSION_NAMES[compression] if compression < len(_COMPRESSION_NAMES) else compression
        raise ExrError(f"{path}: EXR compression {name} is not supported; write with NONE, ZIPS or ZIP")
    width, height, y_min = header["width"], header["height"], header["window"][1]
    channels = header["channels"]
    line_bytes = sum(dt.itemsize for _, dt in channels) * width
    planes = {name: np.empty((height, width), dtype=np.float32) for name, _ in channels}
    for offset in offsets:
        pos = offset
        if multipart:
            pos += 4  # the part number
        y, size = struct.unpack_from("<ii", data, pos)
        chunk = data[pos + 8 : pos + 8 + size]
        row = y - y_min
        lines = min(_LINES_PER_CHUNK[compression], height - row)
        expected = line_bytes * lines
        if compression != 0 and size < expected:
            chunk = _unzip(chunk, expected)
        if len(chunk) != expected:
            raise ExrError(f"{path}: truncated chunk at line {y}")
        at = 0
        for line in range(lines):
            for name, dt in channels:
                n = dt.itemsize * width
                planes[name][row + line] = np.frombuffer(chunk, dtype=dt, count=width, offset=at)
                at += n
    return planes


def _unzip(chunk: bytes, expected: int) -> bytes:
    """OpenEXR ZIP: zlib, then undo the byte predictor and the even/odd byte split."""
    raw = np.frombuffer(zlib.decompress(chunk), dtype=np.uint8)
    if raw.size != expected:
        raise ExrError("corrupt ZIP chunk")
    t = _undo_predictor(raw)
    half = (expected + 1) // 2
    out = np.empty(expected, dtype=np.uint8)
    out[0::2] = t[:half]
    out[1::2] = t[half:]
    return out.tobytes()


def _undo_predictor(raw: np.ndarray) -> np.ndarray:
    # t[0] = raw[0]; t[i] = t[i-1] + raw[i] - 128 (mod 256)
    d = raw.astype(np.int64)
    d[1:] -= 128
    return (np.cumsum(d) & 0xFF).astype(np.uint8)


def _openimageio() -> Any:
    try:
        import OpenImageIO  # type: ignore[import-not-found]
    except ImportError:
        return None
    return OpenImageIO
