"""Raw pixels on the wire (``image/x-scenecast-pixels``, docs/protocol.md "Raw pixels"), numpy only.

On loopback a PNG's compression costs far more than the bytes it saves (~45 ms to encode a 1024²
control image here, ~70 ms for the backend to decode it), so the client sends control images and
takes results as a 16-byte header and the rows. The layout is the backend's ``jobs/pixels.py``:
``b"SCPX"``, version 1, channels (1/3/4), two zero bytes, width and height as little-endian uint32,
then uint8 samples, row 0 at the top, channels interleaved.
"""

from __future__ import annotations

import struct

import numpy as np

MEDIA_TYPE = "image/x-scenecast-pixels"
MAGIC = b"SCPX"
_HEADER = struct.Struct("<4sBBHII")


def is_pixels(data: bytes | bytearray | memoryview) -> bool:
    return bytes(data[:4]) == MAGIC


def pixel_pieces(image: np.ndarray) -> list[bytes | memoryview]:
    """``encode_pixels`` as two buffers to send one after the other: the header, then the samples. A
    C-contiguous array is sent from its own memory (no copy: ~2 ms saved per 1024² RGB image here)."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected H x W x 1/3/4 pixels, got shape {image.shape}")
    height, width, channels = image.shape
    header = _HEADER.pack(MAGIC, 1, channels, 0, width, height)
    return [header, np.ascontiguousarray(image).data.cast("B")]


def encode_pixels(image: np.ndarray) -> bytearray:
    """H x W or H x W x 1/3/4 uint8 -> pixel bytes in one buffer (``submit`` sends ``pixel_pieces``)."""
    header, samples = pixel_pieces(image)
    return bytearray(header) + samples


def decode_pixels(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Pixel bytes -> H x W x C uint8 (read-only view of ``data``); ValueError when malformed."""
    if len(data) < _HEADER.size:
        raise ValueError("shorter than the pixel header")
    magic, version, channels, _, width, height = _HEADER.unpack_from(data, 0)
    if magic != MAGIC or version != 1 or channels not in (1, 3, 4):
        raise ValueError("not version-1 scenecast pixels")
    if len(data) != _HEADER.size + width * height * channels:
        raise ValueError(f"{width}x{height}x{channels} pixels do not fill {len(data)} bytes")
    return np.frombuffer(data, np.uint8, offset=_HEADER.size).reshape(height, width, channels)
