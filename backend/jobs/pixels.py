"""Raw pixels on the wire: ``image/x-scenecast-pixels`` (docs/protocol.md, "Raw pixels").

PNG costs ~70 ms to decode and ~150 ms to encode at 1024² on a CPU core; on loopback the bytes cost
nothing, so control images and results may travel uncompressed. The format is a 16-byte header and
the rows, so it is self-describing wherever a PNG may go (multipart parts, result bodies):

    offset  size  field
    0       4     magic b"SCPX"
    4       1     version, 1
    5       1     channels: 1 (grey), 3 (RGB) or 4 (RGBA)
    6       2     zero
    8       4     width, uint32 little-endian
    12      4     height, uint32 little-endian
    16      ...   width * height * channels uint8 samples, row 0 at the top, channels interleaved

Values are sRGB as stored, exactly like an 8-bit PNG's. The same layout lives in the add-on's
``core/pixels.py`` (which may not import the backend).
"""

from __future__ import annotations

import struct

import numpy as np

MEDIA_TYPE = "image/x-scenecast-pixels"
MAGIC = b"SCPX"
VERSION = 1
HEADER = struct.Struct("<4sBBHII")
CHANNELS = (1, 3, 4)


class PixelFormatError(ValueError):
    pass


def is_pixels(data: bytes | bytearray | memoryview) -> bool:
    return bytes(data[:4]) == MAGIC


def read_header(data: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """(width, height, channels) of a pixel buffer, checked against its length; nothing decoded."""
    if len(data) < HEADER.size:
        raise PixelFormatError(f"{len(data)} bytes is shorter than the {HEADER.size}-byte header")
    magic, version, channels, zero, width, height = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise PixelFormatError("the header does not start with SCPX")
    if version != VERSION or zero != 0:
        raise PixelFormatError(f"pixel format version {version} (reserved {zero}) is not version {VERSION}")
    if channels not in CHANNELS:
        raise PixelFormatError(f"{channels} channels; 1, 3 or 4 are allowed")
    if width < 1 or height < 1:
        raise PixelFormatError(f"size {width}x{height} is empty")
    expected = HEADER.size + width * height * channels
    if len(data) != expected:
        raise PixelFormatError(f"{width}x{height}x{channels} needs {expected} bytes, the body has {len(data)}")
    return width, height, channels


def pieces(image: np.ndarray) -> tuple[bytes, memoryview]:
    """``encode`` as two buffers sent one after the other: the header, then the samples from the
    array's own memory when it is C-contiguous (a result is: ``pipelines/images.from_pixels``)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in CHANNELS:
        raise ValueError(f"expected H x W x 1/3/4 uint8, got {image.shape} {image.dtype}")
    height, width, channels = image.shape
    return HEADER.pack(MAGIC, VERSION, channels, 0, width, height), np.ascontiguousarray(image).data.cast("B")


def encode(image: np.ndarray) -> bytearray:
    """H x W (grey), H x W x 1/3/4 uint8 -> pixel bytes in one buffer (answers send ``pieces``)."""
    if image.ndim == 2:
        image = image[:, :, None]
    header, samples = pieces(image)
    return bytearray(header) + samples


def decode(data: bytes | bytearray | memoryview) -> np.ndarray:
    """Pixel bytes -> H x W x C uint8: a view of ``data`` (read-only for ``bytes``, writable for a bytearray)."""
    width, height, channels = read_header(data)
    return np.frombuffer(data, np.uint8, offset=HEADER.size).reshape(height, width, channels)
