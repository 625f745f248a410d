"""Bool mask operations shared by edges, frames and texturing: one ``dilate``, one meaning.

Arrays are (H, W) bool, row 0 at the top (see ``conventions``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["dilate", "width_for_radius"]


def width_for_radius(radius_px: int) -> int:
    """The ``dilate`` width that grows a mask by ``radius_px`` pixels in every direction (2r + 1)."""
    r = int(radius_px)
    if r < 0:
        raise ValueError(f"a margin must be 0 pixels or more, got {radius_px}")
    return 2 * r + 1


def dilate(mask: np.ndarray, width: int) -> np.ndarray:
    """``mask`` dilated by a ``width`` × ``width`` square: a 1-pixel line becomes ``width`` pixels wide.

    Width 1 changes nothing. An odd width is centred (``width_for_radius(r)`` grows by ``r`` pixels on
    every side); an even one reaches one pixel further down and right than up and left, so a 1-pixel
    line thickened to 2 covers the line and its lower/right neighbour. Vectorised as two 1-D running
    sums, so the cost does not grow with ``width``.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {m.shape}")
    w = int(width)
    if w < 1 or w != width:
        raise ValueError(f"dilation width must be a whole number of pixels, 1 or more, got {width}")
    if w == 1:
        return m.copy()
    before, after = w // 2, (w - 1) // 2  # pixel i is set when any of [i - before, i + after] is
    out = m
    for axis in (0, 1):
        n = out.shape[axis]
        pad = list(out.shape)
        pad[axis] = 1
        counts = np.concatenate([np.zeros(pad, np.int32), np.cumsum(out, axis=axis, dtype=np.int32)], axis=axis)
        idx = np.arange(n)
        hi = np.minimum(idx + after + 1, n)  # counts[k] = number set in [0, k)
        lo = np.maximum(idx - before, 0)
        out = (np.take(counts, hi, axis=axis) - np.take(counts, lo, axis=axis)) > 0
    return out
