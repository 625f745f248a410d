"""Motion vectors and backward warping, for temporally consistent frame sequences.

Blender's Vector pass gives, for every pixel of frame t, where the surface point seen there was in
frame t−1 and will be in frame t+1 (exact scene motion, no optical-flow estimate). Warping the
previous *output* frame by it gives an img2img init for frame t that already agrees with t−1; the
pixels frame t−1 cannot supply (disoccluded) are masked for inpainting.

Conventions (as everywhere in Scenecast, see ``conventions``): arrays have row 0 at the **top**;
a flow is (H, W, 2) float32 in pixels, ``[..., 0]`` = dx to the right, ``[..., 1]`` = dy **down**.
Pixel (row i, column j) has its centre at x = j, y = i, so a flow of (+2, 0) at column j means
"this point was at column j + 2 in the other frame".

Blender's Vector pass (measured with bpy 5.0.1 and 4.2, see docs/passes.md), converted to row 0
top by ``addon/blender``: 4 channels in pixels, with Blender's y axis pointing **up**:

- channels 0, 1: position in frame t−1 minus position in frame t (x right, y up);
- channels 2, 3: position in frame t minus position in frame t+1 (x right, y up).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Default relative depth tolerance of ``disocclusion_mask``: 5 % of frame t's planar depth.
DEFAULT_REL_TOLERANCE = 0.05
#: Bilinear weights below this do not count as a tap (a source exactly on a pixel centre uses 1 tap).
_TAP_EPS = 1e-4


def flow_to_previous(vector: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32: offset (dx right, dy down, pixels) from frame t to the same point in t−1.

    ``vector`` is Blender's Vector pass of frame t, (H, W, 4), row 0 top (``RawPasses.vector``).
    """
    v = _check_vector(vector)
    return np.stack([v[..., 0], -v[..., 1]], axis=-1).astype(np.float32)


def flow_to_next(vector: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32: offset (dx right, dy down, pixels) from frame t to the same point in t+1."""
    v = _check_vector(vector)
    return np.stack([-v[..., 2], v[..., 3]], axis=-1).astype(np.float32)


def warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward bilinear warp of frame t−1 into frame t: ``out[y, x] = image[y + dy, x + dx]``.

    ``image``: (H, W) or (H, W, C) of frame t−1 (any dtype; values are kept in its units, e.g.
    0..255 for uint8). ``flow``: (H, W, 2) to previous (``flow_to_previous``). Returns the warped
    image as float32 of the same shape, and ``inside`` (H, W) bool: False where the source point
    lies outside frame t−1 (more than half a pixel beyond the outer pixel centres); such pixels
    hold the nearest edge value and are not to be trusted.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    height, width = img.shape[:2]
    x0, y0, wx, wy, inside = _taps(flow, height, width)
    flat = img.reshape(height * width, -1)  # gathers on flat rows: faster than 2-D fancy indexing
    dx = (x0 < width - 1).astype(np.intp)  # 0 in a one-pixel-wide image
    dy = np.where(y0 < height - 1, width, 0)
    i00 = (y0 * width + x0).ravel()
    dx, dy = dx.ravel(), dy.ravel()
    wx, wy = wx.reshape(-1, 1), wy.reshape(-1, 1)
    ux, uy = 1 - wx, 1 - wy
    out = np.take(flat, i00, axis=0).astype(np.float32) * (ux * uy)
    out += np.take(flat, i00 + dx, axis=0) * (wx * uy)
    out += np.take(flat, i00 + dy, axis=0) * (ux * wy)
    out += np.take(flat, i00 + dy + dx, axis=0) * (wx * wy)
    out = out.reshape(img.shape)
    return out.astype(np.float32, copy=False), inside


def disocclusion_mask(
    flow_prev: np.ndarray,
    depth_t: np.ndarray,
    depth_prev: np.ndarray,
    *,
    rel_tolerance: float = DEFAULT_REL_TOLERANCE,
    object_id_t: np.ndarray | None = None,
    object_id_prev: np.ndarray | None = None,
) -> np.ndarray:
    """(H, W) bool, True where frame t−1 has no trustworthy source for the pixel of frame t.

    A pixel is disoccluded when any of:

    - its source point lies outside frame t−1 (``warp``'s ``inside`` is False);
    - the previous depth warped to the pixel disagrees with ``depth_t``. The warp interpolates
      *inverse* depth ``u = 1/d`` bilinearly over the taps the colour warp blends (weight > 1e-4,
      up to 4 pixels of frame t−1; background ``u = 0``): ``u`` is affine in image space on any
      plane, so a grazing surface still warps to its own depth, while a warp that blends two
      surfaces across a silhouette of frame t−1 lands between them and is masked (as its colour
      would be a blend too). Disagreeing means ``|u_warped − u_t| > rel_tolerance · max(u_t,
      u_warped)``, i.e. about ``|d_prev − d_t| > rel_tolerance · d_t``; background against a
      surface always disagrees, background against background agrees;
    - (when both ids are given) any tap the warp blends has an object id other than ``object_id_t``.

    Depths are planar, scene units, ``inf`` = no surface (``RawPasses.depth``). The tolerance must
    absorb the depth change of a point between frames (motion along the view axis), so it is
    relative; 5 % suits small per-frame motion.
    """
    dt = np.asarray(depth_t, dtype=np.float32)
    dp = np.asarray(depth_prev, dtype=np.float32)
    if dt.ndim != 2 or dp.shape != dt.shape:
        raise ValueError(f"depths must both be (H, W) and match, got {dt.shape} and {dp.shape}")
    if rel_tolerance < 0:
        raise ValueError(f"rel_tolerance must be >= 0, got {rel_tolerance}")
    if (object_id_t is None) != (object_id_prev is None):
        raise ValueError("pass both object_id_t and object_id_prev, or neither")
    height, width = dt.shape
    x0, y0, wx, wy, inside = _taps(flow_prev, height, width)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    ids_t = ids_p = None
    if object_id_t is not None and object_id_prev is not None:
        ids_t, ids_p = np.asarray(object_id_t), np.asarray(object_id_prev)
        if ids_t.shape != dt.shape or ids_p.shape != dt.shape:
            raise ValueError(f"object ids must be (H, W) = {dt.shape}, got {ids_t.shape} and {ids_p.shape}")
    u_t = _inverse_depth(dt)
    u_prev = _inverse_depth(dp)
    taps = ((y0, x0, (1 - wx) * (1 - wy)), (y0, x1, wx * (1 - wy)), (y1, x0, (1 - wx) * wy), (y1, x1, wx * wy))
    u_sum = np.zeros_like(u_t)
    w_sum = np.zeros_like(u_t)
    bad = ~inside
    for ys, xs, weight in taps:
        used = weight > _TAP_EPS
        w = np.where(used, weight, np.float32(0.0))
        u_sum += w * u_prev[ys, xs]
        w_sum += w
        if ids_t is not None and ids_p is not None:
            bad |= used & (ids_p[ys, xs] != ids_t)
    u_warped = u_sum / np.maximum(w_sum, np.float32(1e-12))
    bad |= np.abs(u_warped - u_t) > np.float32(rel_tolerance) * np.maximum(u_t, u_warped)
    return bad


def warped_difference(
    frame_t: np.ndarray, frame_prev: np.ndarray, flow_prev: np.ndarray, valid: np.ndarray | None = None
) -> float:
    """Mean absolute difference between frame t and frame t−1 warped into t, over valid pixels.

    The flicker metric: 0 when frame t is exactly frame t−1 moved along the scene's motion. Values are
    in the frames' units (0..255 for uint8), averaged over channels. ``valid`` (H, W) bool selects the
    pixels that count (e.g. ``~disocclusion_mask(...)``); pixels whose source is outside frame t−1 are
    always left out. Returns ``nan`` when no pixel counts.
    """
    cur = np.asarray(frame_t)
    if cur.shape != np.shape(frame_prev):
        raise ValueError(f"frames differ in shape: {cur.shape} and {np.shape(frame_prev)}")
    warped, inside = warp(frame_prev, flow_prev)
    keep = inside if valid is None else inside & np.asarray(valid, dtype=bool)
    if not keep.any():
        return float("nan")
    diff = np.abs(cur.astype(np.float32) - warped)
    if diff.ndim == 3:
        diff = diff.mean(axis=-1)
    return float(diff[keep].mean(dtype=np.float64))


def flicker(
    frames: Sequence[np.ndarray],
    flows: Sequence[np.ndarray],
    masks: Sequence[np.ndarray | None] | None = None,
) -> list[float]:
    """``warped_difference`` for each consecutive pair: one value per frame after the first.

    ``flows[i]`` is the flow to previous of ``frames[i + 1]`` (its Vector pass through
    ``flow_to_previous``), so ``len(flows) == len(frames) − 1``; ``flows`` may also have one entry per
    frame, the first (frame 0 has no predecessor) then being ignored. ``masks`` likewise: (H, W) bool
    **valid** masks (True = the pixel counts, e.g. ``~disocclusion_mask``), or None for all pixels.
    """
    pairs = len(frames) - 1
    flows = _per_pair(flows, pairs, "flows")
    mask_list: Sequence[np.ndarray | None] = [None] * max(pairs, 0) if masks is None else _per_pair(masks, pairs, "masks")
    return [warped_difference(frames[i + 1], frames[i], flows[i], mask_list[i]) for i in range(max(pairs, 0))]


def _per_pair(items: Sequence, pairs: int, name: str) -> Sequence:
    if len(items) == pairs + 1:
        return list(items)[1:]
    if len(items) != pairs:
        raise ValueError(f"{name}: need one per consecutive pair ({pairs}) or one per frame, got {len(items)}")
    return items


def _inverse_depth(depth: np.ndarray) -> np.ndarray:
    """1/d where there is a surface (finite, positive depth), 0 for background."""
    with np.errstate(divide="ignore", invalid="ignore"):
        surface = np.isfinite(depth) & (depth > 0)
        return np.where(surface, np.float32(1.0) / depth, np.float32(0.0)).astype(np.float32)


def _check_vector(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    if v.ndim != 3 or v.shape[-1] != 4:
        raise ValueError(f"vector pass must be (H, W, 4), got shape {v.shape}: render it with vector=True")
    return v


def _taps(
    flow: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Top-left tap indices, bilinear weights (x, y) and ``inside`` for sampling at pixel + flow."""
    f = np.asarray(flow, dtype=np.float32)
    if f.shape != (height, width, 2):
        raise ValueError(f"flow must be (H, W, 2) = ({height}, {width}, 2), got shape {f.shape}")
    sx = f[..., 0] + np.arange(width, dtype=np.float32)[None, :]
    sy = f[..., 1] + np.arange(height, dtype=np.float32)[:, None]
    with np.errstate(invalid="ignore"):
        inside = (sx >= -0.5) & (sx <= width - 0.5) & (sy >= -0.5) & (sy <= height - 0.5)
    # fmax/fmin drop NaN (a NaN flow samples pixel 0; ``inside`` is False there).
    sx = np.fmin(np.fmax(sx, np.float32(0.0)), np.float32(width - 1))
    sy = np.fmin(np.fmax(sy, np.float32(0.0)), np.float32(height - 1))
    x0 = np.minimum(sx.astype(np.intp), max(width - 2, 0))  # sx >= 0: truncation is floor
    y0 = np.minimum(sy.astype(np.intp), max(height - 2, 0))
    wx: np.ndarray = sx - x0.astype(np.float32)
    wy: np.ndarray = sy - y0.astype(np.float32)
    return x0, y0, wx, wy, inside
