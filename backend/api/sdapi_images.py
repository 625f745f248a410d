"""A1111 images: base64 in, arrays at the job's size out, the way A1111 resizes, blurs and fills.

Pure (numpy, Pillow, OpenCV). Same byte and pixel limits as ``POST /v1/jobs``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageFilter

from ..jobs.images import MAX_IMAGE_BYTES, MAX_PIXELS

class Unsupported(ValueError):
    """A request field we cannot honour; ``field`` is its A1111 path (``alwayson_scripts.controlnet.args[0].module``)."""

    def __init__(self, field: str, message: str, fix: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.fix = field, message, fix


_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,")


def decode_image(value: Any, where: str, *, grey: bool = False) -> tuple[np.ndarray, str]:
    """A1111 base64 image (bare or ``data:image/...;base64,``; PNG, JPEG or WebP) -> (H x W x 3 uint8, sha256 hex).

    Same byte and pixel limits as ``POST /v1/jobs``; ``grey`` returns a mask's luminance in all 3 channels,
    with transparent pixels black (A1111 reads an RGBA mask by its alpha when it has one).
    """
    if not isinstance(value, str) or not value:
        raise Unsupported(where, "expected a base64-encoded image", "send the image file as base64 text")
    text = _DATA_URL.sub("", value, count=1)
    if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise Unsupported(where, f"the image is larger than {MAX_IMAGE_BYTES} bytes", "send a smaller image")
    try:
        data = base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise Unsupported(where, f"not valid base64 ({exc})", "send the image file as base64 text") from exc
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise Unsupported(where, f"the image is {im.width}x{im.height}, larger than {MAX_PIXELS} pixels",
                                  "send images at the job's width and height")
            im.load()
            if grey:
                if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                    rgba = im.convert("RGBA")
                    lum = np.asarray(rgba.convert("L"), dtype=np.uint16)
                    alpha = np.asarray(rgba.getchannel("A"), dtype=np.uint16)
                    arr = (lum * alpha // 255).astype(np.uint8)
                else:
                    arr = np.asarray(im.convert("L"), dtype=np.uint8)
                rgb = np.repeat(arr[:, :, None], 3, axis=2)
            else:
                rgb = np.array(im.convert("RGB"), dtype=np.uint8)
    except Unsupported:
        raise
    except Exception as exc:  # PIL raises many types for corrupt data
        raise Unsupported(where, f"not a readable image ({exc})", "send a PNG, JPEG or WebP file as base64") from exc
    return np.ascontiguousarray(rgb), hashlib.sha256(data).hexdigest()


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img
    interp = cv2.INTER_AREA if w * h > width * height else cv2.INTER_LANCZOS4
    return cv2.resize(img, (width, height), interpolation=interp)


def fit_image(img: np.ndarray, width: int, height: int, mode: str, *, border: str = "median") -> np.ndarray:
    """``img`` at width x height: ``just`` stretches; ``crop`` scales to cover and cuts the centre; ``fill``
    scales to fit and pads. ``border`` says what pads: ``median`` (ControlNet's "Resize and Fill": the median
    colour of the image's border) or ``stretch`` (img2img's: the outermost rows/columns stretched outwards).
    """
    h, w = img.shape[:2]
    if mode == "just" or (w, h) == (width, height):
        return _resize(img, width, height)
    if mode == "crop":
        k = max(width / w, height / h)
        sw, sh = max(width, round(w * k)), max(height, round(h * k))
        scaled = _resize(img, sw, sh)
        x, y = (sw - width) // 2, (sh - height) // 2
        return np.ascontiguousarray(scaled[y:y + height, x:x + width])
    k = min(width / w, height / h)
    sw, sh = min(width, max(1, round(w * k))), min(height, max(1, round(h * k)))
    scaled = _resize(img, sw, sh)
    x, y = (width - sw) // 2, (height - sh) // 2
    if border == "median":
        edge = np.concatenate([scaled[0], scaled[-1], scaled[:, 0], scaled[:, -1]], axis=0)
        out = np.empty((height, width, 3), np.uint8)
        out[:] = np.median(edge, axis=0).astype(np.uint8)
        out[y:y + sh, x:x + sw] = scaled
        return out
    return cv2.copyMakeBorder(scaled, y, height - sh - y, x, width - sw - x, cv2.BORDER_REPLICATE)


def blur_mask(mask: np.ndarray, blur_x: int, blur_y: int) -> np.ndarray:
    """A1111's mask blur: a Gaussian of standard deviation blur_x / blur_y pixels, kernel 2.5 sigma each side."""
    out = mask
    if blur_x > 0:
        k = 2 * int(2.5 * blur_x + 0.5) + 1
        out = cv2.GaussianBlur(out, (k, 1), blur_x)
    if blur_y > 0:
        k = 2 * int(2.5 * blur_y + 0.5) + 1
        out = cv2.GaussianBlur(out, (1, k), blur_y)
    return out


def fill_masked(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A1111's "fill" masked content: the repainted area starts as the surrounding colours, blurred in.

    Successively smaller Gaussian blurs of the kept pixels (alpha-weighted) are layered over each other,
    so far from the edge the colour is a wide average and near it a local one; kept pixels stay as they are.
    """
    keep = Image.fromarray(255 - mask[:, :, 0])
    source = Image.fromarray(image).convert("RGBA")
    layer = Image.new("RGBA", source.size)
    layer.paste(source, mask=keep)
    premultiplied = layer.convert("RGBa")
    result = Image.new("RGBA", source.size)
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = premultiplied.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            result.alpha_composite(blurred)
    return np.array(result.convert("RGB"), dtype=np.uint8)
