"""Make the control images of examples/boxes.json: a ray-cast scene of boxes on a floor.

Depth follows DEVELOPERS.md: near = bright, normalised against a fixed near/far (not min/max), the
background (no hit) black. Edges: white lines on black where depth jumps or the surface turns.
Run with any Python that has numpy and Pillow; the PNGs are committed beside the spec.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 512
NEAR, FAR = 2.0, 14.0  # scene units, stated once for the whole "job"
BOXES = [  # (min corner, max corner), y up, floor at y=0
    ((-2.2, 0.0, -1.0), (-0.6, 1.6, 0.6)),
    ((0.2, 0.0, -2.5), (2.4, 2.8, -0.5)),
    ((0.6, 0.0, 0.6), (1.4, 0.8, 1.4)),
    ((-1.0, 0.0, -5.0), (0.4, 1.2, -3.6)),
]


def render(size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel camera depth (inf on no hit) and a surface id (-1 background, 0 floor, 1.. box face)."""
    eye = np.array([0.0, 2.5, 6.0])
    target = np.array([0.0, 0.8, -1.0])
    fwd = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(fwd, [0.0, 1.0, 0.0]); right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    half = np.tan(np.radians(50.0) / 2)
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    x = ((u + 0.5) / size * 2 - 1) * half
    y = (1 - (v + 0.5) / size * 2) * half  # row 0 at the top
    dirs = fwd + x[..., None] * right + y[..., None] * up
    t_best = np.full((size, size), np.inf)
    ids = np.full((size, size), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = -eye[1] / dirs[..., 1]
        hit = (t_floor > 0) & np.isfinite(t_floor)
        far_floor = np.abs(eye[2] + t_floor * dirs[..., 2]) < 12
        hit &= far_floor
        t_best[hit], ids[hit] = t_floor[hit], 0
        for b, (lo, hi) in enumerate(BOXES):
            lo, hi = np.array(lo), np.array(hi)
            t1, t2 = (lo - eye) / dirs, (hi - eye) / dirs
            tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
            t_near, t_far = tmin.max(axis=-1), tmax.min(axis=-1)
            face = tmin.argmax(axis=-1) * 2 + (t1 > t2)[np.arange(size)[:, None], np.arange(size)[None, :], tmin.argmax(axis=-1)]
            hit = (t_near <= t_far) & (t_near > 0) & (t_near < t_best)
            t_best[hit], ids[hit] = t_near[hit], 1 + b * 6 + face[hit]
    depth = t_best * (dirs @ fwd)  # distance along the view axis
    return depth, ids


def depth_png(depth: np.ndarray) -> np.ndarray:
    d = np.clip((FAR - depth) / (FAR - NEAR), 0.0, 1.0)
    d[~np.isfinite(depth)] = 0.0
    return np.round(d * 255).astype(np.uint8)


def edges_png(depth: np.ndarray, ids: np.ndarray) -> np.ndarray:
    finite = np.where(np.isfinite(depth), depth, FAR * 4)
    edge = np.zeros(ids.shape, dtype=bool)
    for axis in (0, 1):
        jump = np.abs(np.diff(finite, axis=axis)) > 0.15 * np.minimum(np.take(finite, range(finite.shape[axis] - 1), axis=axis), 10)
        turn = np.diff(ids, axis=axis) != 0
        e = jump | turn
        pad = [(0, 0), (0, 0)]; pad[axis] = (0, 1)
        edge |= np.pad(e, pad)
    return np.where(edge, 255, 0).astype(np.uint8)


def main() -> None:
    here = Path(__file__).resolve().parent
    depth, ids = render()
    Image.fromarray(depth_png(depth), "L").save(here / "boxes-depth.png", optimize=True)
    Image.fromarray(edges_png(depth, ids), "L").save(here / "boxes-edges.png", optimize=True)


if __name__ == "__main__":
    main()
