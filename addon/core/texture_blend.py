"""Project view images onto UV textures: per-texel weights, accumulation over views, seam padding, hole fill.

Textures are (H, W[, C]) arrays with row 0 at the **bottom** (Blender's ``Image.pixels`` order); view
images and depth maps are row 0 at the **top**. Colours are blended as given (sRGB 0..1 in Scenecast):
a weighted mean of nearly equal colours hardly depends on the transfer function, and it keeps the
texture bit-compatible with the images the backend made.

Weight of a texel in a view = ``max(cos θ, 0) ** power`` (θ: normal vs direction to the eye), 0 past
``cutoff_deg``, 0 when occluded (planar depth beyond the view's depth map by more than
``depth_tolerance``, relative) or outside the image, times a feather that ramps 0 → 1 over
``feather_px`` pixels away from silhouettes, depth discontinuities and the image border (never below
``feather_floor`` for a visible texel, so thin parts seen only near their silhouettes are not lost).
"""

from __future__ import annotations

import math

import numpy as np

from .feather import DEFAULT_EDGE_THRESHOLD, FEATHER_FLOOR, feather_map
from .projection import CameraView, ViewRaster, sample_bilinear
from .uv_raster import TexelSamples
from .view_sampler import TexelSet, ViewSampler, project_arrays

__all__ = ["DEFAULT_EDGE_THRESHOLD", "FEATHER_FLOOR", "FALLBACK_RGB", "accumulate", "feather_map", "fill_unseen",
           "pad_islands", "project_image", "render_texture_into_view", "view_weights"]

#: Colour given to island texels when no view saw any texel at all (sRGB mid grey).
FALLBACK_RGB = (0.5, 0.5, 0.5)


def _surface_depth(dmap: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Depth map read at ``xy`` for the occlusion test: bilinear where the 4 pixels around are all
    surface (exact for planes, so steep surfaces do not shadow themselves), else the farthest of them
    that is surface (lenient at silhouettes, which the feather zeroes anyway); inf where none is."""
    h, w = dmap.shape
    x = np.clip(xy[:, 0].astype(np.float32) - 0.5, 0, w - 1)
    y = np.clip(xy[:, 1].astype(np.float32) - 0.5, 0, h - 1)
    x0 = np.minimum(x.astype(np.int32), max(w - 2, 0))
    y0 = np.minimum(y.astype(np.int32), max(h - 2, 0))
    fx, fy = x - x0, y - y0
    flat = dmap.reshape(-1)
    i = y0 * w + x0
    dx, dy = (1 if w > 1 else 0), (w if h > 1 else 0)
    d00, d01, d10, d11 = (np.take(flat, k) for k in (i, i + dx, i + dy, i + dy + dx))
    with np.errstate(invalid="ignore"):
        bil = (d00 * (1 - fx) + d01 * fx) * (1 - fy) + (d10 * (1 - fx) + d11 * fx) * fy
    odd = np.flatnonzero(~np.isfinite(bil))  # a few texels at silhouettes
    if len(odd):
        stack = np.stack([d00[odd], d01[odd], d10[odd], d11[odd]])
        far = np.where(np.isfinite(stack), stack, -np.inf).max(axis=0)
        far[~np.isfinite(far)] = np.inf
        bil[odd] = far
    return bil


def view_weights(view: CameraView, points: np.ndarray, normals: np.ndarray, depth_map: np.ndarray, *,
                 power: float = 2.0, cutoff_deg: float = 80.0, feather_px: float = 8.0,
                 depth_tolerance: float = 0.01,
                 edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
                 feather_floor: float = FEATHER_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Weights (N,) float32 >= 0 of world ``points`` with ``normals`` in ``view``, and their pixel coords
    (N, 2) (row 0 top; ``nan`` behind a perspective camera). ``depth_map`` is that view's planar depth."""
    points = np.asarray(points, dtype=np.float32)
    n = np.asarray(normals, dtype=np.float32)
    count = len(points)
    weights = np.zeros(count, dtype=np.float32)
    xy = np.full((count, 2), np.nan, dtype=np.float32)
    w, h = view.resolution
    dmap = np.asarray(depth_map, dtype=np.float32)
    if dmap.shape != (h, w):
        raise ValueError(f"depth map is {dmap.shape[::-1]} (W, H) but the view is {w}x{h}: rasterise it for this view")
    # cheap first cut over all texels: facing the camera at all (sign of n . (eye - p), no normalising)
    if view.is_orthographic:
        facing = n @ view.view_axis().astype(np.float32)
    else:
        facing = n @ view.eye().astype(np.float32)
        facing -= np.einsum("ij,ij->i", n, points)
    live = np.flatnonzero(facing > 0)
    p, nl = np.take(points, live, axis=0), np.take(n, live, axis=0)
    # cos = n . (eye - p) / (|n| |eye - p|), reusing n . (eye - p) from the cut above
    norm2 = np.einsum("ij,ij->i", nl, nl)
    if not view.is_orthographic:
        eye = view.eye().astype(np.float32)
        dist2 = np.einsum("ij,ij->i", p, p)
        dist2 -= 2.0 * (p @ eye)
        dist2 += np.float32(eye @ eye)
        norm2 *= np.maximum(dist2, np.float32(1e-30))
    cos = np.take(facing, live) / np.sqrt(np.maximum(norm2, np.float32(1e-30)))
    cut = np.flatnonzero(cos >= max(math.cos(math.radians(cutoff_deg)), 1e-6))
    live, p, cos = live[cut], np.take(p, cut, axis=0), cos[cut]
    if not len(live):
        return weights, xy
    pxy, depth = view.project32(p)
    xy[live] = pxy
    with np.errstate(invalid="ignore"):
        inside = (pxy[:, 0] >= 0) & (pxy[:, 0] < w) & (pxy[:, 1] >= 0) & (pxy[:, 1] < h) & (depth > 0)
    keep = np.flatnonzero(inside)
    live, pxy, depth, cos = live[keep], np.take(pxy, keep, axis=0), depth[keep], cos[keep]
    seen = _surface_depth(dmap, pxy)
    visible = np.flatnonzero(depth <= seen * (1.0 + depth_tolerance))  # inf (no surface there) never occludes
    live, pxy, cos = live[visible], np.take(pxy, visible, axis=0), cos[visible]
    feather = sample_bilinear(feather_map(dmap, feather_px, edge_threshold), pxy)[:, 0]
    feather = np.maximum(feather, np.float32(feather_floor))  # thin parts seen only near silhouettes still count
    weights[live] = (cos if power == 1 else np.power(cos, np.float32(power))) * feather
    return weights, xy


def project_image(samples: TexelSamples, points: np.ndarray, normals: np.ndarray, view: CameraView,
                  image: np.ndarray, depth_map: np.ndarray, **weight_params: float) -> tuple[np.ndarray, np.ndarray]:
    """Colours (N, 3) float32 of ``image`` (H, W, 3 or 4, 0..1, row 0 top) seen at each texel sample, and
    their weights (N,). ``points``/``normals`` are ``interpolate``d at ``samples``. An alpha channel
    scales the weight (transparent pixels project nothing). Runs ``view_sampler``'s chunked kernel (the
    same maths as ``view_weights``); for many views or targets keep a ``TexelSet`` and ``ViewSampler``
    and call ``view_sampler.project_into``, which also skips the (N, 3) arrays."""
    if len(points) != len(samples.index):
        raise ValueError(f"{len(points)} points for {len(samples.index)} texel samples: interpolate them from the same samples")
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"image must be (H, W, 3) or (H, W, 4), got {img.shape}")
    if img.shape[:2] != (view.resolution[1], view.resolution[0]):
        raise ValueError(f"image is {img.shape[1]}x{img.shape[0]} but the view is {view.resolution[0]}x{view.resolution[1]}")
    sampler = ViewSampler(view, img, depth_map, **weight_params)
    return project_arrays(sampler, TexelSet(points, normals, samples.index))


def accumulate(color_tex: np.ndarray, weight_tex: np.ndarray, samples_index: np.ndarray, colors: np.ndarray,
               weights: np.ndarray) -> None:
    """In place: ``color = (color * w_old + c * w) / (w_old + w)``, ``weight += w`` where w > 0.

    ``samples_index`` are unique flat texel indices (``TexelSamples.index``); textures must be C-contiguous.
    """
    if not (color_tex.flags.c_contiguous and weight_tex.flags.c_contiguous):
        raise ValueError("color_tex and weight_tex must be C-contiguous arrays (use np.ascontiguousarray)")
    ct = color_tex.reshape(-1, color_tex.shape[-1])
    wt = weight_tex.reshape(-1)
    weights = np.asarray(weights, dtype=np.float32)
    live = np.flatnonzero(weights > 0)
    idx = np.take(np.asarray(samples_index), live)
    w_new = np.take(weights, live)
    w_old = np.take(wt, idx)
    total = w_old + w_new
    keep = w_old / total
    old = np.take(ct, idx, axis=0)[:, :3]
    new = np.take(np.asarray(colors, dtype=np.float32), live, axis=0)
    new -= old  # c_old + (c - c_old) * w / (w_old + w)
    new *= (1.0 - keep)[:, None]
    new += old
    ct[idx, :3] = new
    wt[idx] = total


_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _grow(col: np.ndarray, known: np.ndarray, allowed: np.ndarray, iterations: int | None,
          wanted: np.ndarray | None = None) -> None:
    """Front propagation in place on padded flat arrays: each step, unknown ``allowed`` texels with a known
    8-neighbour take the mean of their known neighbours. Work is proportional to the texels filled.
    Stops after ``iterations`` steps, when nothing can grow, or once every ``wanted`` texel is known."""
    h2, w2 = known.shape
    kf, cf, af = known.reshape(-1), col.reshape(-1, col.shape[-1]), allowed.reshape(-1)
    offs = np.array([dy * w2 + dx for dy, dx in _OFFSETS], dtype=np.int64)
    grown = np.zeros_like(known)
    for dy, dx in _OFFSETS:  # the first front: one whole-image dilation
        grown[1:-1, 1:-1] |= known[1 + dy:h2 - 1 + dy, 1 + dx:w2 - 1 + dx]
    front = np.flatnonzero(grown.reshape(-1) & ~kf & af)
    left = int(np.count_nonzero(wanted & ~known)) if wanted is not None else -1
    wf = wanted.reshape(-1) if wanted is not None else None
    rows = cf.view(np.dtype((np.void, cf.dtype.itemsize * cf.shape[1]))).reshape(-1)  # a view: sees the updates
    stamp = np.zeros(kf.shape, dtype=np.int32)  # de-duplicates the next front without sorting it
    step = 0
    while len(front) and (iterations is None or step < iterations) and left != 0:
        nb = front[:, None] + offs  # (n, 8)
        k = kf[nb]
        near = np.take(rows, nb).view(cf.dtype).reshape(len(front), 8, -1)  # whole texels: a fast gather
        cf[front] = np.einsum("ijc,ij->ic", near, k.astype(cf.dtype)) / k.sum(axis=1, keepdims=True)
        kf[front] = True
        if wf is not None:
            left -= int(np.count_nonzero(wf[front]))
        cand = nb.reshape(-1)
        cand = cand[~kf[cand] & af[cand]]
        order = np.arange(len(cand), dtype=np.int32)
        stamp[cand] = order  # a texel listed twice keeps one entry (each is computed from the same state)
        front = cand[stamp[cand] == order]
        step += 1


def _padded(color_tex: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = known.shape
    col = np.zeros((h + 2, w + 2, color_tex.shape[-1]), dtype=np.float32)
    col[1:-1, 1:-1] = color_tex
    k = np.zeros((h + 2, w + 2), dtype=bool)
    k[1:-1, 1:-1] = known
    inner = np.zeros_like(k)
    inner[1:-1, 1:-1] = True
    return col, k, inner


def pad_islands(color_tex: np.ndarray, known: np.ndarray, iterations: int = 16) -> np.ndarray:
    """Copy of ``color_tex`` where unknown texels within ``iterations`` texels of known ones take the mean
    of their known neighbours, ring by ring: colour bleeds past UV island borders so bilinear filtering
    and mipmaps show no seams. Texels farther away are left as they were."""
    col, k, inner = _padded(color_tex, np.asarray(known, dtype=bool))
    _grow(col, k, inner, iterations)
    return col[1:-1, 1:-1].astype(color_tex.dtype, copy=False)


def fill_unseen(color_tex: np.ndarray, weight_tex: np.ndarray, island_mask: np.ndarray) -> np.ndarray:
    """Copy of ``color_tex`` with every island texel that no view saw (weight 0) filled from seen texels.

    Nearest-colour propagation in UV space (repeated 8-neighbour dilation, each new texel the mean of
    its known neighbours), first inside the islands, then — for islands no view touched at all — across
    the whole texture. Chosen over push-pull because it keeps the colour of the nearest seen surface
    instead of a blur of distant ones, and its cost is proportional to the texels filled. If nothing
    was seen at all, islands get ``FALLBACK_RGB``.
    """
    islands = np.asarray(island_mask, dtype=bool)
    seen = islands & (np.asarray(weight_tex) > 0)
    out = np.array(color_tex, dtype=np.float32, copy=True)
    holes = islands & ~seen
    if not holes.any():
        return out.astype(color_tex.dtype, copy=False)
    if not seen.any():
        out[holes] = FALLBACK_RGB[: out.shape[-1]]
        return out.astype(color_tex.dtype, copy=False)
    col, k, inner = _padded(out, seen)
    allowed = np.zeros_like(k)
    allowed[1:-1, 1:-1] = islands
    wanted = np.zeros_like(k)
    wanted[1:-1, 1:-1] = holes
    _grow(col, k, allowed, None, wanted)
    if np.count_nonzero(wanted & ~k):  # islands with no seen texel: bridge through the gaps between islands
        _grow(col, k, inner, None, wanted)
    out[holes] = col[1:-1, 1:-1][holes]
    return out.astype(color_tex.dtype, copy=False)


def render_texture_into_view(raster: ViewRaster, corner_uv: np.ndarray, color_tex: np.ndarray,
                             weight_tex: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What ``raster``'s view sees of the texture so far: rgb (H, W, 3) float32 and weight (H, W) float32,
    row 0 top, 0 where no surface (nearest-texel lookup of the texture, row 0 bottom)."""
    h, w = raster.tri.shape
    th, tw = weight_tex.shape
    rgb = np.zeros((h * w, 3), dtype=np.float32)
    weight = np.zeros(h * w, dtype=np.float32)
    pix = np.flatnonzero(raster.tri.reshape(-1) >= 0)
    tri = np.take(raster.tri.reshape(-1), pix).astype(np.intp)
    b = np.take(raster.bary.reshape(-1, 3), pix, axis=0)
    uv = np.asarray(corner_uv, dtype=np.float32)
    # per corner and coordinate: a gather from a contiguous (T,) table and a multiply-add (no (n, 3, 2) gather)
    texel = None
    for c, size in ((1, th), (0, tw)):
        coord = np.take(np.ascontiguousarray(uv[:, 0, c]), tri) * b[:, 0]
        coord += np.take(np.ascontiguousarray(uv[:, 1, c]), tri) * b[:, 1]
        coord += np.take(np.ascontiguousarray(uv[:, 2, c]), tri) * b[:, 2]
        coord *= size
        cell = np.clip(np.floor(coord), 0, size - 1).astype(np.intp)
        texel = cell if texel is None else texel * tw + cell
    assert texel is not None
    channels = color_tex.shape[-1]
    if color_tex.dtype == np.float32 and color_tex.flags.c_contiguous:  # whole texels as items: a fast gather
        rows = color_tex.reshape(-1, channels).view(np.dtype((np.void, 4 * channels))).reshape(-1)
        seen = np.ascontiguousarray(np.take(rows, texel).view(np.float32).reshape(len(pix), channels)[:, :3])
        np.put(rgb.view(np.dtype((np.void, 12))).reshape(-1), pix, seen.view(np.dtype((np.void, 12))).reshape(-1))
    else:
        rgb[pix] = color_tex.reshape(-1, channels)[texel, :3]
    weight[pix] = np.take(weight_tex.reshape(-1), texel)
    return rgb.reshape(h, w, 3), weight.reshape(h, w)
