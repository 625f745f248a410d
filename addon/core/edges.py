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

from .conventions import BACKGROUND_ID, BACKGROUND_RGB, WHITE

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
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {d.shape}")
    ids = np.asarray(object_id)
    n = np.asarray(normal_cam, dtype=np.float64)
    if ids.shape != d.shape or n.shape != d.shape + (3,):
        raise ValueError(f"shapes differ: depth {d.shape}, normal {n.shape}, object_id {ids.shape}")
    fg = np.isfinite(d) & (d > 0.0) & (ids != BACKGROUND_ID)
    u = np.where(fg, 1.0 / np.where(fg, d, 1.0), 0.0)
    ids = np.where(fg, ids, BACKGROUND_ID)
    cos_crease = np.cos(np.radians(crease_angle_deg))
    edges = np.zeros(d.shape, dtype=bool)
    for axis in (0, 1):
        _mark_axis(edges, u, n, ids, fg, axis, depth_rel_threshold, cos_crease)
    return dilate(edges, width)


def _mark_axis(
    edges: np.ndarray,
    u: np.ndarray,
    n: np.ndarray,
    ids: np.ndarray,
    fg: np.ndarray,
    axis: int,
    rel: float,
    cos_crease: float,
) -> None:
    """Mark edges between each pixel p and its next neighbour q along ``axis``."""
    # Move the axis to the front so p = [:-1], q = [1:] along it.
    u, ids, fg, n = (np.moveaxis(a, axis, 0) for a in (u, ids, fg, n))
    out = np.moveaxis(edges, axis, 0)  # a view: writes land in ``edges``
    up, uq = u[:-1], u[1:]
    fp, fq = fg[:-1], fg[1:]
    same = fp & fq & (ids[:-1] == ids[1:])

    # Silhouettes: the id changes (object/object or object/background): mark the nearer side.
    boundary = (ids[:-1] != ids[1:]) & (fp | fq)
    p_nearer = up >= uq  # background has u = 0, so the foreground side wins
    out[:-1] |= boundary & p_nearer
    out[1:] |= boundary & ~p_nearer

    # Depth jumps inside one object.
    step = uq - up
    # Signed steps just before p and just after q, where those stay on the same object (nan: unknown).
    before = np.full(step.shape, np.nan)
    after = np.full(step.shape, np.nan)
    before[1:] = np.where(same[:-1], step[:-1], np.nan)
    after[:-1] = np.where(same[1:], step[1:], np.nan)
    # On planes u is affine, so across a crease the step is a blend of the slopes on either side and
    # lies between them; a jump lies outside. Unknown neighbours drop out; none known: the interval is 0.
    lo = np.fmin(before, after)
    hi = np.fmax(before, after)
    lo = np.where(np.isnan(lo), 0.0, lo)
    hi = np.where(np.isnan(hi), 0.0, hi)
    excess = np.maximum(np.maximum(lo - step, step - hi), 0.0)
    jump = same & (excess > rel * np.maximum(up, uq))
    out[:-1] |= jump & p_nearer
    out[1:] |= jump & ~p_nearer

    # Creases: the normal turns by more than the crease angle.
    cos = np.einsum("...k,...k->...", n[:-1], n[1:])
    lengths = np.linalg.norm(n[:-1], axis=-1) * np.linalg.norm(n[1:], axis=-1)
    crease = same & (lengths > 0) & (cos < cos_crease * np.where(lengths > 0, lengths, 1.0))
    out[:-1] |= crease


def edges_to_control(edges: np.ndarray) -> np.ndarray:
    """White lines (255) on black: (H, W) bool → (H, W, 3) uint8."""
    e = np.asarray(edges, dtype=bool)
    if e.ndim != 2:
        raise ValueError(f"edges must be (H, W), got shape {e.shape}")
    out = np.full(e.shape + (3,), BACKGROUND_RGB, dtype=np.uint8)
    out[e] = WHITE
    return out


def dilate(mask: np.ndarray, width: int) -> np.ndarray:
    """Thicken a bool mask to lines about ``width`` pixels wide (square structuring element)."""
    m = np.asarray(mask, dtype=bool)
    if width < 1:
        raise ValueError(f"line width must be at least 1 pixel, got {width}")
    if width == 1:
        return m.copy()
    lo, hi = (width - 1) // 2, width // 2
    for axis in (0, 1):
        grown = m.copy()
        for off in range(-lo, hi + 1):
            if off:
                grown |= _shifted(m, off, axis)
        m = grown
    return m


def _shifted(m: np.ndarray, off: int, axis: int) -> np.ndarray:
    """m moved by ``off`` pixels along ``axis``, padded with False: out[i] = m[i - off]."""
    out = np.zeros_like(m)
    src = [slice(None)] * m.ndim
    dst = [slice(None)] * m.ndim
    if off > 0:
        src[axis], dst[axis] = slice(0, -off), slice(off, None)
    else:
        src[axis], dst[axis] = slice(-off, None), slice(0, off)
    out[tuple(dst)] = m[tuple(src)]
    return out


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
