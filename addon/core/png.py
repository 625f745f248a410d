"""PNG encode/decode with numpy and zlib: control images out, results in, metadata in text chunks.

Blender can write PNGs, but only through an ``Image`` datablock and a file; the add-on needs bytes in
memory (to send to the backend) and wants the backend's parameters from the results' text chunks, so
this small codec lives in core. Arrays are row 0 = top (PNG's own order), values are stored exactly
(no colour management, no gamma chunk).

Encode: 8-bit grey, grey+alpha, RGB, RGBA. Decode: additionally 16-bit (returned as uint16), palette
and grey at 1/2/4 bits (returned as uint8); all five filter types; non-interlaced only. Anything else raises ``ValueError`` naming what was found.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: channels → PNG colour type
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_FILTER_NAMES = {"none": 0, "sub": 1, "up": 2, "average": 3, "paeth": 4}
DEFAULT_COMPRESS_LEVEL = 2
_IDAT_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------- encode


def encode_png(
    arr: np.ndarray,
    text: Mapping[str, str] | None = None,
    compress_level: int = DEFAULT_COMPRESS_LEVEL,
    filters: str | int = "adaptive",
) -> bytes:
    """PNG bytes of a uint8 image: (H, W) grey, (H, W, 2) grey+alpha, (H, W, 3) RGB, (H, W, 4) RGBA.

    ``text``: key/value pairs stored as tEXt chunks (iTXt, UTF-8, when a value is not Latin-1).
    ``filters``: "adaptive" (per row, the cheapest of None/Sub/Up by the sum of absolute values —
    libpng's heuristic, fully vectorised), or one filter for every row: a name ("none", "sub", "up",
    "average", "paeth") or its number.
    """
    a = np.asarray(arr)
    if a.dtype != np.uint8:
        raise ValueError(f"encode_png takes uint8 arrays, got {a.dtype}: convert with np.clip(x, 0, 255).astype(np.uint8)")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in _COLOR_TYPE:
        raise ValueError(f"image must be (H, W) or (H, W, 1|2|3|4), got shape {np.asarray(arr).shape}")
    h, w, ch = a.shape
    if h == 0 or w == 0:
        raise ValueError(f"image is empty: shape {a.shape}")
    raw = np.ascontiguousarray(a).reshape(h, w * ch)
    filtered = _filter(raw, ch, filters)
    out = [SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPE[ch], 0, 0, 0))]
    for key, value in (text or {}).items():
        out.append(_text_chunk(key, value))
    data = zlib.compress(filtered.tobytes(), compress_level)
    for i in range(0, len(data), _IDAT_CHUNK):
        out.append(_chunk(b"IDAT", data[i : i + _IDAT_CHUNK]))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def _filter(raw: np.ndarray, bpp: int, filters: str | int) -> np.ndarray:
    """(H, 1 + W*bpp) uint8: each row prefixed by its filter type."""
    h = raw.shape[0]
    if filters == "adaptive":
        candidates = [0, 1, 2]
    else:
        ft = _FILTER_NAMES.get(filters, filters) if isinstance(filters, str) else filters
        if ft not in (0, 1, 2, 3, 4):
            raise ValueError(f"unknown PNG filter {filters!r}: use 'adaptive', {', '.join(_FILTER_NAMES)} or 0..4")
        candidates = [int(ft)]
    options = np.stack([_apply_filter(raw, bpp, ft) for ft in candidates])  # (F, H, N)
    if len(candidates) == 1:
        choice = np.zeros(h, dtype=np.intp)
    else:
        cost = np.abs(options.view(np.int8).astype(np.int32)).sum(axis=2)  # (F, H)
        choice = cost.argmin(axis=0)
    rows = options[choice, np.arange(h)]
    types = np.asarray(candidates, dtype=np.uint8)[choice]
    return np.concatenate([types[:, None], rows], axis=1)


def _apply_filter(raw: np.ndarray, bpp: int, ft: int) -> np.ndarray:
    x = raw.astype(np.int16)
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]
    b = np.zeros_like(x)
    b[1:] = x[:-1]
    if ft == 0:
        pred = np.zeros_like(x)
    elif ft == 1:
        pred = a
    elif ft == 2:
        pred = b
    elif ft == 3:
        pred = (a + b) >> 1
    else:
        c = np.zeros_like(x)
        c[1:, bpp:] = x[:-1, :-bpp]
        pred = _paeth(a, b, c)
    return ((x - pred) & 0xFF).astype(np.uint8)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    pa = np.abs(b - c)
    pb = np.abs(a - c)
    pc = np.abs(a + b - 2 * c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _text_chunk(key: str, value: str) -> bytes:
    if not 1 <= len(key) <= 79 or "\0" in key:
        raise ValueError(f"PNG text key {key!r} must be 1-79 characters without NUL")
    try:
        k = key.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"PNG text key {key!r} must be Latin-1") from None
    try:
        return _chunk(b"tEXt", k + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:
        return _chunk(b"iTXt", k + b"\0\0\0\0\0" + value.encode("utf-8"))


# --------------------------------------------------------------------------------------- decode


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG: the 8-byte signature is missing")
    pos = len(SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length:
            raise ValueError(f"PNG truncated inside chunk {kind!r}")
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"PNG chunk {kind!r} has a bad CRC: the data is corrupt")
        yield kind, body
        if kind == b"IEND":
            return
        pos += 12 + length
    raise ValueError("PNG truncated: no IEND chunk")


def control_png(image: np.ndarray | bytes) -> bytes:
    """A control image as PNG for the hot path to the backend (PNG bytes pass through unchanged).

    Depth and edge images are grey in three equal channels: they go as 8-bit grey, a third of the
    bytes. Rows use the Up filter and zlib level 1: flat control images shrink nearly as well as with
    adaptive filtering, at about half the encoding time.
    """
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 3 and (a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all():
        a = a[..., 0]
    return encode_png(a, compress_level=1, filters="up")


def decode_png(data: bytes) -> np.ndarray:
    """An image from PNG bytes: (H, W) grey, (H, W, 2|3|4); uint8, or uint16 for 16-bit files.

    Grey at 1/2/4 bits is scaled to 0..255.

    Palette images come back as RGB (RGBA when they carry transparency). Row 0 is the top.
    """
    header = None
    idat: list[bytes] = []
    palette = None
    trns = None
    for kind, body in _chunks(bytes(data)):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
        elif kind == b"tRNS":
            trns = np.frombuffer(body, dtype=np.uint8)
    if header is None:
        raise ValueError("PNG has no IHDR chunk")
    w, h, depth, color_type, _, _, interlace = header
    if color_type not in _CHANNELS:
        raise ValueError(f"PNG colour type {color_type} is invalid")
    if interlace:
        raise ValueError("interlaced PNGs are not supported: save without interlacing")
    if depth not in (1, 2, 4, 8, 16) or (depth < 8 and color_type not in (0, 3)) or (depth == 16 and color_type == 3):
        raise ValueError(f"PNG bit depth {depth} with colour type {color_type} is invalid")
    ch = _CHANNELS[color_type]
    raw = zlib.decompress(b"".join(idat))
    stride = (w * ch * depth + 7) // 8
    bpp = max(1, ch * depth // 8)  # the filters' byte distance to "the pixel on the left"
    if len(raw) < h * (stride + 1):
        raise ValueError(f"PNG image data is short: {len(raw)} bytes for {w}x{h}")
    rows = np.frombuffer(raw, dtype=np.uint8, count=h * (stride + 1)).reshape(h, stride + 1)
    pixels = _unfilter(rows[:, 0].copy(), rows[:, 1:].reshape(h, stride // bpp, bpp)).reshape(h, stride)
    if depth == 16:
        img = pixels.reshape(h, w * ch, 2).astype(np.uint16)
        out = ((img[..., 0] << 8) | img[..., 1]).reshape(h, w, ch)
    elif depth < 8:
        bits = np.unpackbits(pixels, axis=1).reshape(h, stride * 8 // depth, depth)
        weights = (1 << np.arange(depth - 1, -1, -1)).astype(np.uint8)
        values = (bits * weights).sum(axis=2).astype(np.uint8)[:, :w]
        if color_type == 0:  # scale grey samples to the full 8-bit range
            values = (values.astype(np.uint16) * 255 // ((1 << depth) - 1)).astype(np.uint8)
        out = values[:, :, None]
    else:
        out = pixels.reshape(h, w, ch)
    if color_type == 3:
        if palette is None:
            raise ValueError("palette PNG without a PLTE chunk")
        index = out[..., 0]
        if trns is not None:
            alpha = np.full(len(palette), 255, dtype=np.uint8)
            alpha[: len(trns)] = trns[: len(palette)]
            return np.concatenate([palette, alpha[:, None]], axis=1)[index]
        return palette[index]
    return out[..., 0] if ch == 1 else out


def _unfilter(types: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Undo the per-row filters. f: (H, W, bpp) filtered bytes → (H, W, bpp) uint8.

    None/Sub/Up are vectorised per row (Sub is a running sum mod 256). Average and Paeth depend on the
    left neighbour through a non-linear predictor, so the rows from the first to the last such row are
    swept along anti-diagonals instead: every pixel on a diagonal depends only on earlier diagonals,
    which makes H + W vectorised steps rather than H × W scalar ones.
    """
    if (types > 4).any():
        raise ValueError(f"PNG uses unknown filter type {int(types.max())}")
    h, w, bpp = f.shape
    out = np.zeros((h + 1, w + 1, bpp), dtype=np.int32)  # padded: row 0 and column 0 are zero
    slow = np.flatnonzero(types >= 3)
    first, last = (int(slow[0]), int(slow[-1]) + 1) if slow.size else (h, h)
    for r in range(first):
        _unfilter_row(out, r, int(types[r]), f[r])
    if slow.size:
        _unfilter_wavefront(out, types, f, first, last)
    for r in range(last, h):
        _unfilter_row(out, r, int(types[r]), f[r])
    return out[1:, 1:].astype(np.uint8)


def _unfilter_row(out: np.ndarray, r: int, ft: int, fr: np.ndarray) -> None:
    x = fr.astype(np.int32)
    if ft == 1:
        x = np.cumsum(x, axis=0)
    elif ft == 2:
        x = x + out[r, 1:]
    out[r + 1, 1:] = x & 0xFF


def _unfilter_wavefront(out: np.ndarray, types: np.ndarray, f: np.ndarray, r0: int, r1: int) -> None:
    """Rows r0..r1-1 along anti-diagonals, in a skewed copy where each diagonal is one column.

    Row i of the block (0: the finished row above it) keeps pixel x in diagonal x + i + 1, so a pixel's
    left, upper and upper-left neighbours sit in the two previous diagonals: every step is plain slicing.
    Slots left of a row's start stay zero (PNG's "outside the image"); slots past its end are unused.
    """
    h, w, bpp = f.shape
    n = r1 - r0
    rows = np.arange(n + 1)[:, None]
    cols = np.arange(w)[None, :] + rows + 1
    # Stored diagonal-major, skew[column, row], so each step reads and writes contiguous memory.
    skew = np.zeros((w + n + 1, n + 1, bpp), dtype=np.int16)
    skew[cols[:1], rows[:1]] = out[r0, 1:]  # row 0: the finished row above the block
    fs = np.zeros_like(skew)
    fs[cols[1:], rows[1:]] = f[r0:r1]
    t = types[r0:r1].astype(np.int16)[:, None]  # (n, 1): broadcasts over the bytes of a pixel
    present = set(np.unique(t).tolist())
    for j in range(2, w + n + 1):
        a = skew[j - 1, 1:]
        b = skew[j - 1, :-1]
        c = skew[j - 2, :-1]
        pred = np.zeros_like(a)
        if 4 in present:
            pred = np.where(t == 4, _paeth(a, b, c), pred)
        if 3 in present:
            pred = np.where(t == 3, (a + b) >> 1, pred)
        if 2 in present:
            pred = np.where(t == 2, b, pred)
        if 1 in present:
            pred = np.where(t == 1, a, pred)
        skew[j, 1:] = (fs[j, 1:] + pred) & 0xFF
    out[r0 + 1 : r1 + 1, 1:] = skew[cols[1:], rows[1:]]


# ----------------------------------------------------------------------------------------- text


def read_png_text(data: bytes) -> dict[str, str]:
    """All text chunks (tEXt, zTXt, iTXt) of a PNG as a dict; later chunks win on repeated keys."""
    out: dict[str, str] = {}
    for kind, body in _chunks(bytes(data)):
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed = rest[0]
            _lang, _, rest = rest[2:].partition(b"\0")
            _translated, _, value = rest.partition(b"\0")
            if compressed:
                value = zlib.decompress(value)
            out[key.decode("latin-1")] = value.decode("utf-8")
    return out
