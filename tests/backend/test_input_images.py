"""Decoding the PNGs a job arrives with: every mode ends as H x W x 3 uint8 with the same values."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from backend.jobs.images import ImageError, decode_png


def png(array: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="PNG")
    return buf.getvalue()


def test_grey_rgb_and_rgba_decode_to_the_same_rgb_values() -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (24, 40), dtype=np.uint8)
    rgb = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(png(grey, "L"), "g"), np.repeat(grey[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(decode_png(png(rgb, "RGB"), "c"), rgb)
    rgba = np.concatenate([rgb, np.full((24, 40, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(decode_png(png(rgba, "RGBA"), "a"), rgb)


def test_decoded_arrays_are_writable_for_torch() -> None:
    for image in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.uint8)):
        decoded = decode_png(png(image, "L" if image.ndim == 2 else "RGB"), "k")
        assert decoded.flags.writeable and decoded.shape == (8, 8, 3) and decoded.dtype == np.uint8


def test_not_a_png_names_the_key_and_the_fix() -> None:
    with pytest.raises(ImageError) as info:
        decode_png(b"GIF89a....", "depth")
    assert "depth" in info.value.message and "PNG" in info.value.fix
