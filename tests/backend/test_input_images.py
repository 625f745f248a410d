"""Decoding the PNGs a job arrives with: every mode ends as H x W x 3 uint8 with the same values."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from backend.jobs.images import ImageError, decode_png
from backend.pipelines.images import fit, to_control, to_pixels


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


def test_decoded_arrays_become_tensors_without_warnings_and_grey_stays_one_plane() -> None:
    rng = np.random.default_rng(1)
    for image in (rng.integers(0, 256, (8, 6), np.uint8), rng.integers(0, 256, (8, 6, 3), np.uint8)):
        decoded = decode_png(png(image, "L" if image.ndim == 2 else "RGB"), "k")
        assert decoded.shape == (8, 6, 3) and decoded.dtype == np.uint8
        assert (decoded.strides[2] == 0) == (image.ndim == 2)  # grey: one plane seen as three channels
        expected = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch warns on read-only arrays
            for size in ((6, 8), (3, 4)):
                fitted, _ = fit(decoded, *size)
                want, _ = fit(np.ascontiguousarray(expected), *size)
                np.testing.assert_array_equal(fitted, want)
                control = to_control(fitted, torch.device("cpu"), torch.float32)
                torch.testing.assert_close(control, to_control(want, torch.device("cpu"), torch.float32))
                pixels = to_pixels(fitted, torch.device("cpu"), torch.float32)
                torch.testing.assert_close(pixels, to_pixels(want, torch.device("cpu"), torch.float32))


def test_not_a_png_names_the_key_and_the_fix() -> None:
    with pytest.raises(ImageError) as info:
        decode_png(b"GIF89a....", "depth")
    assert "depth" in info.value.message and "PNG" in info.value.fix
