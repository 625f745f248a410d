"""Edge images in numpy: geometric edges from render passes, and Canny for a clay render.

Geometric edges come from the scene's own data, so unlike Canny on a shaded image they are exact:
no texture noise, no missed edges between equally lit faces. An edge is drawn where

- the object id changes (one object in front of another, or an object against the background),
- depth jumps within one object (self-occlusion, e.g. a torus seen from the side),
- the surface normal turns by more than a crease angle (a cube's edges).

Each edge is drawn on one side only, one pixel wide: on the nearer surface for silhouettes (the
occluding contour), on the top/left pixel for creases. ``width`` thickens lines afterwards.
Arrays are row 0 = top; depth is planar (scene units, ``inf`` for background) and normals are in
camera space, as defined in ``conventions``.
"""

from __future__ import annotations

import numpy as np

from .conventions import BACKGROUND_ID, BACKGROUND_RGB, WHITE, grey_channels
from .masks import dilate

#: Default relative depth jump that counts as a discontinuity (2 %).
DEFAULT_DEPTH_REL_THRESHOLD = 0.02
#: Default angle between neighbouring normals that counts as a crease.
DEFAULT_CREASE_ANGLE_DEG = 40.0


def geometric_edges(
    depth: np.ndarray,
    normal_cam: np.ndarray,
    object_id: np.ndarray,
    *,
    depth_rel_threshold: float = DEFAULT_DEPTH_REL_THRESHOLD,
    crease_angle_deg: float = DEFAULT_CREASE_ANGLE_DEG,
    width: int = 1,
) -> np.ndarray:
    """(H, W) bool edges: silhouettes, depth discontinuities and creases.

    Depth discontinuities are found in inverse depth ``u = 1/d``, which is affine in image space on
    any plane under perspective projection: a plane, however grazing, has zero second difference,
    so a tilted floor produces no edges. Across a crease the step ``u_q − u_p`` between neighbours is
    a blend of the steps just before p and just after q, so it lies between them; a depth jump is
    where the step falls outside that interval by more than ``depth_rel_threshold`` × u (relative,
    2 % by default). That is exact on planes, however grazing, and still catches a one-pixel pole. ``crease_angle_deg``: the angle between neighbouring normals above which
    a crease is drawn (flat-shaded faces; smooth-shaded curves turn by a few degrees per pixel).
    """
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {d.shape}")
    ids = np.asarray(object_id)
    n = np.asarray(normal_cam, dtype=np.float32)
    if ids.shape != d.shape or n.shape != d.shape + (3,):
        raise ValueError(f"shapes differ: depth {d.shape}, normal {n.shape}, object_id {ids.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        fg = np.isfinite(d) & (d > 0.0) & (ids != BACKGROUND_ID)
        u = np.where(fg, np.float32(1.0) / d, np.float32(0.0))  # inverse depth; background 0
        length = np.sqrt(n[..., 0] ** 2 + n[..., 1] ** 2 + n[..., 2] ** 2)
        scale = np.where(length > 1e-6, np.float32(1.0) / length, np.float32(0.0))
    unit = [np.ascontiguousarray(n[..., k] * scale) for k in range(3)]  # zero where there is no normal
    ids = np.where(fg, ids, BACKGROUND_ID)
    cos_crease = np.float32(np.cos(np.radians(crease_angle_deg)))
    edges = np.zeros(d.shape, dtype=bool)
    for axis in (0, 1):
        _mark_axis(edges, u, unit, ids, fg, axis, np.float32(depth_rel_threshold), cos_crease)
    return dilate(edges, width)


def _mark_axis(
    edges: np.ndarray,
    u: np.ndarray,
    unit: list[np.ndarray],
    ids: np.ndarray,
    fg: np.ndarray,
    axis: int,
    rel: np.float32,
    cos_crease: np.float32,
) -> None:
    """Mark edges between each pixel p and its next neighbour q along ``axis`` (0: rows, 1: columns)."""
    whole = slice(None)

    def at(sl: slice) -> tuple[slice, slice]:
        return (sl, whole) if axis == 0 else (whole, sl)

    P, Q = at(slice(None, -1)), at(slice(1, None))  # p = P, q = Q: pairs of neighbours
    up, uq = u[P], u[Q]
    same_id = ids[P] == ids[Q]
    same = fg[P] & fg[Q] & same_id

    # Silhouettes: the id changes (object/object or object/background): mark the nearer side.
    boundary = ~same_id  # background pairs have equal ids, so one side is always foreground
    p_nearer = up >= uq  # background has u = 0, so the foreground side wins
    edges[P] |= boundary & p_nearer
    edges[Q] |= boundary & ~p_nearer

    # Depth jumps inside one object. Signed steps just before p and just after q, where those stay
    # on the same object. On planes u is affine, so across a crease the step is a blend of those two
    # and lies between them; a jump lies outside. Unknown neighbours drop out; none known: 0.
    step = uq - up
    S0, S1 = at(slice(None, -1)), at(slice(1, None))  # along the steps themselves
    has_b = np.zeros(step.shape, dtype=bool)
    has_a = np.zeros(step.shape, dtype=bool)
    before = np.zeros_like(step)
    after = np.zeros_like(step)
    has_b[S1] = same[S0]
    before[S1] = step[S0]
    has_a[S0] = same[S1]
    after[S0] = step[S1]
    before = np.where(has_b, before, np.where(has_a, after, 0.0))
    after = np.where(has_a, after, before)
    lo = np.minimum(before, after)
    hi = np.maximum(before, after)
    excess = np.maximum(np.maximum(lo - step, step - hi), 0.0)
    jump = same & (excess > rel * np.maximum(up, uq))
    edges[P] |= jump & p_nearer
    edges[Q] |= jump & ~p_nearer

    # Creases: the (unit) normals of neighbours turn by more than the crease angle.
    cos = unit[0][P] * unit[0][Q] + unit[1][P] * unit[1][Q] + unit[2][P] * unit[2][Q]
    nonzero = (unit[0] != 0) | (unit[1] != 0) | (unit[2] != 0)
    has_normals = nonzero[P] & nonzero[Q]
    edges[P] |= same & has_normals & (cos < cos_crease)


def edges_to_control(edges: np.ndarray) -> np.ndarray:
    """White lines (255) on black: (H, W) bool → (H, W, 3) uint8, a read-only ``grey_channels`` view."""
    e = np.asarray(edges, dtype=bool)
    if e.ndim != 2:
        raise ValueError(f"edges must be (H, W), got shape {e.shape}")
    return grey_channels(np.where(e, np.uint8(WHITE), np.uint8(BACKGROUND_RGB[0])))


# ------------------------------------------------------------------------------------- Canny


def canny(gray: np.ndarray, low: float = 100.0, high: float = 200.0, sigma: float = 1.0) -> np.ndarray:
    """(H, W) bool Canny edges of a grey image, in numpy alone.

    ``gray``: (H, W) float in any scale; ``low``/``high`` are thresholds on the L2 magnitude of the
    unnormalised 3×3 Sobel gradient in the same scale — so for a 0..255 image, 100/200 behave like
    ``cv2.Canny(img, 100, 200, L2gradient=True)`` after a Gaussian blur of ``sigma`` pixels (0: none).
    Steps: blur, Sobel, non-maximum suppression along the gradient (4 directions), hysteresis:
    weak pixels are kept when 8-connected to a strong one (vectorised union-find, no scipy).
    """
    g = np.asarray(gray, dtype=np.float64)
    if g.ndim != 2:
        raise ValueError(f"canny takes a (H, W) grey image, got shape {g.shape}")
    if not 0 <= low <= high:
        raise ValueError(f"canny needs 0 <= low <= high, got low={low}, high={high}")
    if sigma > 0:
        g = gaussian_blur(g, sigma)
    p = np.pad(g, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    mag = np.hypot(gx, gy)
    thin = _non_max_suppression(mag, gx, gy)
    strong = thin & (mag >= high)
    weak = thin & (mag >= low)
    return _hysteresis(strong, weak)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a (H, W) float image, edges extended (no dark border)."""
    radius = max(1, int(np.ceil(3.0 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    out = np.asarray(image, dtype=np.float64)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        p = np.pad(out, pad, mode="edge")
        acc = np.zeros_like(out)
        n = out.shape[axis]
        for i, w in enumerate(k):
            acc += w * (p[i : i + n] if axis == 0 else p[:, i : i + n])
        out = acc
    return out


def _non_max_suppression(mag: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Keep pixels whose magnitude is a maximum along the gradient (quantised to 0/45/90/135°)."""
    angle = np.degrees(np.arctan2(gy, gx)) % 180.0  # gy: down the rows, gx: along the columns
    p = np.pad(mag, 1, mode="constant")
    c = p[1:-1, 1:-1]

    def nb(dr: int, dc: int) -> np.ndarray:
        return p[1 + dr : p.shape[0] - 1 + dr, 1 + dc : p.shape[1] - 1 + dc]

    # (dr, dc) along the gradient for each bin; compare with both neighbours along it.
    keep = np.zeros(mag.shape, dtype=bool)
    bins = [
        ((angle < 22.5) | (angle >= 157.5), (0, 1)),
        ((angle >= 22.5) & (angle < 67.5), (1, 1)),
        ((angle >= 67.5) & (angle < 112.5), (1, 0)),
        ((angle >= 112.5) & (angle < 157.5), (1, -1)),
    ]
    for sel, (dr, dc) in bins:
        # ">=" on one side, ">" on the other: a plateau two pixels wide keeps exactly one.
        keep |= sel & (c >= nb(dr, dc)) & (c > nb(-dr, -dc))
    return keep & (mag > 0)


def _hysteresis(strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    """Weak pixels 8-connected (through weak pixels) to a strong pixel, plus the strong ones."""
    h, w = weak.shape
    index = np.full(weak.shape, -1, dtype=np.int64)
    coords = np.flatnonzero(weak)
    if coords.size == 0:
        return np.zeros_like(weak)
    index.ravel()[coords] = np.arange(coords.size)
    pairs = []
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = index[max(0, -dr) : h - max(0, dr), max(0, -dc) : w - max(0, dc)]
        b = index[max(0, dr) : h + min(0, dr) or None, max(0, dc) : w + min(0, dc) or None]
        both = (a >= 0) & (b >= 0)
        pairs.append((a[both], b[both]))
    ua = np.concatenate([p[0] for p in pairs])
    ub = np.concatenate([p[1] for p in pairs])
    parent = np.arange(coords.size)
    while True:
        ra, rb = parent[ua], parent[ub]
        differ = ra != rb
        if not differ.any():
            break
        lo = np.minimum(ra[differ], rb[differ])
        hi = np.maximum(ra[differ], rb[differ])
        np.minimum.at(parent, hi, lo)  # hook the larger root under the smaller label
        while True:  # pointer jumping: every pixel points at its root again
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
    lit = np.zeros(coords.size, dtype=bool)
    lit[parent[index.ravel()[np.flatnonzero(strong & weak)]]] = True
    out = np.zeros(weak.size, dtype=bool)
    out[coords] = lit[parent]
    return out.reshape(weak.shape)
