"""Input images: probing and decoding with clear errors, and the content-addressed store behind ``POST /v1/images``.

An image's id is ``sha256:<hex>`` of its PNG bytes, so uploading the same file twice is harmless and
a job record can name exactly which inputs produced a result.

A job's inputs wait in the queue as the bytes that arrived (:class:`InputImage`: PNG or raw pixels,
see ``pixels.py``), checked but not decoded: a 49 KB PNG of 4096² is 50 MB decoded, and hundreds of
jobs may wait. The worker decodes them when the job starts.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import pixels
from .atomic import atomic_write

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_IMAGE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 4096 * 4096
IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


class ImageError(ValueError):
    """An input image that cannot be used; ``message`` names the image, ``fix`` says what to send."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


@dataclass(frozen=True, eq=False)
class InputImage:
    """One input image as received: ``data`` (PNG or ``image/x-scenecast-pixels`` bytes), its size in
    pixels read from its header. Decoded only by :meth:`decode`, when the job starts."""

    data: bytes | bytearray  # a bytearray (as the multipart reader gives) lets raw pixels decode without a copy
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def decode(self, key: str) -> np.ndarray:
        return decode_image(self.data, key)


def _check_size(key: str, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(f"image '{key}' is {width}x{height}, larger than {MAX_PIXELS} pixels",
                         "send control images at the job's width and height")


def probe_image(data: bytes | bytearray, key: str) -> InputImage:
    """Check an input without decoding it: format, size limits and (PNG) chunk checksums.

    What a PNG's checksums cannot catch (a corrupt zlib stream) fails the job when it starts, with
    the same ``bad_image`` message.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"image '{key}' is {len(data)} bytes, more than {MAX_IMAGE_BYTES}", "send a smaller image")
    if pixels.is_pixels(data):
        try:
            width, height, _ = pixels.read_header(data)
        except pixels.PixelFormatError as exc:
            raise ImageError(f"image '{key}' is not valid {pixels.MEDIA_TYPE} data: {exc}",
                             "see docs/protocol.md, 'Raw pixels', or send a PNG") from exc
        _check_size(key, width, height)
        return InputImage(data, width, height)
    if not data.startswith(PNG_SIGNATURE):
        raise ImageError(f"image '{key}' is not a PNG", "send images as PNG files (Content-Type: image/png)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.width, im.height
            _check_size(key, width, height)
            im.verify()  # chunk CRCs and structure; no pixels are decoded
    except ImageError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ImageError(f"image '{key}' is not a readable PNG ({exc})", "re-export the image as a PNG") from exc
    return InputImage(data, width, height)


def grey_view(plane: np.ndarray) -> np.ndarray:
    """H x W (x 1) uint8 -> H x W x 3, a read-only view of that one plane (stride 0 across channels).

    Grey control images (depth, edges) arrive as one channel; spreading them to three costs ~1.5 ms
    and 3 bytes a pixel at 1024², for nothing: the stage turns the plane into a tensor and expands it
    there (``pipelines/images.py``)."""
    plane = plane.reshape(plane.shape[0], plane.shape[1], 1)
    return np.broadcast_to(plane, (plane.shape[0], plane.shape[1], 3))


def decode_image(data: bytes | bytearray, key: str) -> np.ndarray:
    """PNG or raw pixel bytes -> H x W x 3 uint8. RGB pixels in a bytearray come back as a writable
    view of it (no copy); grey ones as a read-only ``grey_view`` of their one plane."""
    if not pixels.is_pixels(data):
        return decode_png(bytes(data), key)
    try:
        arr = pixels.decode(data)
    except pixels.PixelFormatError as exc:
        raise ImageError(f"image '{key}' is not valid {pixels.MEDIA_TYPE} data: {exc}",
                         "see docs/protocol.md, 'Raw pixels', or send a PNG") from exc
    _check_size(key, arr.shape[1], arr.shape[0])
    if arr.shape[2] == 1:
        return grey_view(arr)
    if arr.shape[2] == 3 and arr.flags.writeable:
        return arr
    return np.array(arr[:, :, :3])  # one writable copy; alpha dropped like a PNG's


def image_id(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def decode_png(data: bytes, key: str) -> np.ndarray:
    """PNG bytes -> H x W x 3 uint8 (sRGB as stored, row 0 at the top): RGB writable, grey as a read-only
    ``grey_view`` of its plane, alpha dropped."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"image '{key}' is {len(data)} bytes, more than {MAX_IMAGE_BYTES}", "send a smaller PNG")
    if not data.startswith(PNG_SIGNATURE):
        raise ImageError(f"image '{key}' is not a PNG", "send images as PNG files (Content-Type: image/png)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ImageError(
                    f"image '{key}' is {im.width}x{im.height}, larger than {MAX_PIXELS} pixels",
                    "send control images at the job's width and height",
                )
            im.load()
            if im.mode in ("I;16", "I;16B", "I"):
                # 16-bit grey (a depth map): scale to 8 bits rather than clip.
                arr = np.asarray(im, dtype=np.float64)
                arr = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)  # by the format, never by the values
                return grey_view(arr)
            # RGB: one writable copy. Grey control images arrive as one channel and stay one plane.
            if im.mode == "RGB":
                return np.array(im, dtype=np.uint8)
            if im.mode == "L":
                return grey_view(np.asarray(im, dtype=np.uint8))
            return np.array(im.convert("RGB"), dtype=np.uint8)
    except ImageError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ImageError(f"image '{key}' is not a readable PNG ({exc})", "re-export the image as a PNG") from exc


class ImageStore:
    """PNG files named by their sha256 under ``root``; written atomically so readers never see half a file."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, id: str) -> Path:
        return self.root / (id.split(":", 1)[1] + ".png")

    def put(self, data: bytes) -> str:
        """Validate and store a PNG; return its id. Idempotent."""
        id = image_id(data)
        decode_png(data, id)
        path = self._path(id)
        try:
            os.utime(path)  # uploads expire after their last upload (jobs/retention.py): start again
        except FileNotFoundError:
            atomic_write(path, data)
        return id

    def get(self, id: str) -> bytes | None:
        if not IMAGE_ID.match(id):
            return None
        try:
            return self._path(id).read_bytes()
        except FileNotFoundError:
            return None
