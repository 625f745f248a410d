"""The one ``dilate``: a width (line thickness) everywhere, ``width_for_radius`` for margins."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from addon.core.masks import dilate, width_for_radius

ROOT = Path(__file__).resolve().parents[2]


def brute_force(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixel (i, j) is set when any pixel in rows i-w//2..i+(w-1)//2 and the same columns is."""
    h, w = mask.shape
    before, after = width // 2, (width - 1) // 2
    out = np.zeros_like(mask)
    for i in range(h):
        for j in range(w):
            out[i, j] = mask[max(0, i - before):i + after + 1, max(0, j - before):j + after + 1].any()
    return out


def test_dilate_is_a_square_of_the_given_width_at_any_size_and_border():
    rng = np.random.default_rng(1)
    for _ in range(40):
        mask = rng.random((int(rng.integers(1, 14)), int(rng.integers(1, 14)))) < 0.15
        for width in range(1, 7):
            assert np.array_equal(dilate(mask, width), brute_force(mask, width)), width


def test_width_thickens_a_point_to_a_width_by_width_square():
    point = np.zeros((9, 9), bool)
    point[4, 4] = True
    for width in (1, 2, 3, 4):
        assert dilate(point, width).sum() == width * width
    assert dilate(point, 3)[3:6, 3:6].all()
    assert dilate(point, 2)[4:6, 4:6].all()  # an even width reaches down and right


def test_a_radius_grows_by_that_many_pixels_on_every_side():
    mask = np.zeros((20, 20), bool)
    mask[10, 10] = True
    mask[0, 19] = True
    grown = dilate(mask, width_for_radius(2))
    expected = np.zeros((20, 20), bool)
    expected[8:13, 8:13] = True
    expected[0:3, 17:] = True
    assert np.array_equal(grown, expected)
    assert np.array_equal(dilate(mask, width_for_radius(0)), mask)


@pytest.mark.parametrize("width", [0, -1, 1.5])
def test_a_width_below_one_pixel_or_fractional_is_refused(width):
    with pytest.raises(ValueError, match="1 or more"):
        dilate(np.zeros((4, 4), bool), width)
    with pytest.raises(ValueError, match="0 pixels or more"):
        width_for_radius(-1)


def test_there_is_one_dilate_in_the_addon():
    defined = [f"{p.relative_to(ROOT)}:{n.lineno}" for p in sorted((ROOT / "addon").rglob("*.py"))
               for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
               if isinstance(n, ast.FunctionDef) and n.name == "dilate"]
    assert defined == ["addon/core/masks.py:" + defined[0].split(":")[1]] and len(defined) == 1
