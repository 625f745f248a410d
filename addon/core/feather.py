"""The feather of a view's weights: how far each pixel of a depth map is from an edge of what it sees.

A texel seen right at a silhouette, a depth jump or the image border gets a colour that may belong
to the thing behind it, so its weight ramps from 0 there to 1 ``feather_px`` pixels inside. Depth
maps are (H, W) planar depths, row 0 at the top, ``inf`` where nothing was hit. Used by both the
per-view weights of ``texture_blend`` and the chunked kernel of ``view_sampler`` (which
``texture_blend`` runs), so it lives below both.
"""

from __future__ import annotations

import math

import numpy as np

#: Neighbouring pixels whose planar depths differ by more than this fraction count as a depth edge.
DEFAULT_EDGE_THRESHOLD = 0.05
#: Least feather factor of a visible texel: a surface seen only near silhouettes (a thin pole a few
#: pixels wide) still gets its colour, while any view that sees it clearly outweighs it 50 to 1.
FEATHER_FLOOR = 0.02


def _erode(mask: np.ndarray) -> np.ndarray:
    """3x3 erosion (separable); pixels outside the image count as not set."""
    out = mask.copy()
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    out[:, 0] = out[:, -1] = False
    rows = out.copy()
    out[1:] &= rows[:-1]
    out[:-1] &= rows[1:]
    out[0] = out[-1] = False
    return out


def _jumps(d: np.ndarray, threshold: float, axis: int = 1) -> np.ndarray:
    """Depth discontinuities between neighbours along ``axis`` ((H, W-1) bool for 1, (H-1, W) for 0). A step
    counts when it is larger than ``threshold`` (relative) *and* more than twice the steps beside it, so a
    steep but smooth surface (whose steps are all alike) is not mistaken for an edge. Slices along the
    axis itself, so axis 0 runs on contiguous rows (no transposed copy)."""
    def cut(a: np.ndarray, start: int | None, stop: int | None) -> np.ndarray:
        return a[start:stop] if axis == 0 else a[:, start:stop]

    step = np.abs(cut(d, 1, None) - cut(d, None, -1))
    beside = np.zeros_like(step)
    cut(beside, 1, None)[...] = cut(step, None, -1)
    np.maximum(cut(beside, None, -1), cut(step, 1, None), out=cut(beside, None, -1))
    return (step > threshold * np.minimum(cut(d, 1, None), cut(d, None, -1))) & (step > 2.0 * beside)


def feather_map(depth_map: np.ndarray, feather_px: float, edge_threshold: float = DEFAULT_EDGE_THRESHOLD) -> np.ndarray:
    """(H, W) float32 in [0, 1], row 0 top: 0 on and next to silhouettes, depth jumps (see ``_jumps``) and the border,
    rising linearly to 1 at ``feather_px`` pixels (chessboard distance, by repeated 3x3 erosion)."""
    d = np.asarray(depth_map, dtype=np.float32)
    solid = np.isfinite(d)
    dd = np.where(solid, d, 0.0)
    jump_x = _jumps(dd, edge_threshold)
    jump_y = _jumps(dd, edge_threshold, axis=0)
    inner = solid.copy()
    inner[:, 1:] &= ~jump_x
    inner[:, :-1] &= ~jump_x
    inner[1:] &= ~jump_y
    inner[:-1] &= ~jump_y
    steps = int(math.ceil(feather_px))
    if steps <= 0:
        return inner.astype(np.float32)
    dist = np.zeros(d.shape, dtype=np.float32)
    cur = _erode(inner)  # a pixel touching an edge survives no erosion: distance 0
    for _ in range(steps):
        if not cur.any():
            break
        dist += cur
        cur = _erode(cur)
    return np.minimum(dist / float(feather_px), 1.0)
