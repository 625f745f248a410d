"""Cameras as plain matrices, projection of world points into a view, and a numpy z-buffer rasteriser.

View images are row 0 at the **top**; pixel (x, y) has its centre at (x + 0.5, y + 0.5) in pixel
coordinates, y growing downwards. Camera space is Blender's (x right, y up, the camera looks down −z);
depth is *planar* (−z in camera space, scene units), ``inf`` where nothing was hit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import threads
from .uv_raster import setup_triangles, span_chunk, span_parts

#: Triangles with a corner closer to the eye than this (scene units, planar) are not rasterised:
#: the rasteriser does not clip against the near plane.
MIN_DEPTH = 1e-6
#: Scanlines per chunk of ``rasterize_view`` (~100k fragments): enough chunks to share among threads.
_SCANLINES = 1 << 15


@dataclass
class CameraView:
    """One camera: ``world_to_camera`` is ``camera.matrix_world.inverted()``, ``projection`` what
    ``camera.calc_matrix_camera(depsgraph, x=W, y=H)`` returns (OpenGL clip matrix), ``resolution`` (W, H)."""

    world_to_camera: np.ndarray
    projection: np.ndarray
    resolution: tuple[int, int]

    def __post_init__(self) -> None:
        self.world_to_camera = np.asarray(self.world_to_camera, dtype=np.float64).reshape(4, 4)
        self.projection = np.asarray(self.projection, dtype=np.float64).reshape(4, 4)
        self.resolution = (int(self.resolution[0]), int(self.resolution[1]))

    @property
    def is_orthographic(self) -> bool:
        return bool(self.projection[3, 3] == 1.0)

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """(N, 3) float64 camera-space coordinates."""
        p = np.asarray(points_world, dtype=np.float64)
        m = self.world_to_camera
        return p @ m[:3, :3].T + m[:3, 3]

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) float64 (row 0 top, centres at +0.5) and planar depth (N,) = −z_camera.

        Points on or behind the eye plane of a perspective camera get ``nan`` pixel coordinates.
        """
        p = np.asarray(points_world, dtype=np.float64)
        m, proj = self.world_to_camera, self.projection
        # one contiguous float64 array per coordinate: (N, 3) x (3, 3) products are slow in BLAS
        x, y, z = (np.ascontiguousarray(p[:, k]) for k in range(3))

        def affine(row: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
            out = a * row[0]
            out += b * row[1]
            out += c * row[2]
            out += row[3]
            return out

        full = proj @ m  # world -> clip in one product (float64: differences in the last bits only)
        cx, cy, wcl, cz = (affine(row, x, y, z) for row in (full[0], full[1], full[3], m[2]))
        wcl[~(wcl > 0)] = np.nan
        w, h = self.resolution
        xy = np.empty((len(p), 2), dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            xy[:, 0] = (cx / wcl + 1.0) * (0.5 * w)
            xy[:, 1] = (1.0 - cy / wcl) * (0.5 * h)
        return xy, np.negative(cz, out=cz)

    def project32(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``project`` in float32 with one (N, 3) x (3, 4) product: for large texel sets (errors ~1e-4 px)."""
        m = self.projection @ self.world_to_camera
        a = np.concatenate([m[[0, 1, 3]], -self.world_to_camera[2:3]], axis=0).astype(np.float32)  # x, y, w, depth
        r = np.asarray(points_world, dtype=np.float32) @ a[:, :3].T
        r += a[:, 3]
        wcl = r[:, 2]
        wcl[wcl <= 0] = np.nan
        w, h = self.resolution
        xy = np.empty((len(r), 2), dtype=np.float32)
        np.divide(r[:, 0], wcl, out=xy[:, 0])
        np.divide(r[:, 1], wcl, out=xy[:, 1])
        xy[:, 0] = (xy[:, 0] + 1.0) * (0.5 * w)
        xy[:, 1] = (1.0 - xy[:, 1]) * (0.5 * h)
        return xy, r[:, 3]

    def eye(self) -> np.ndarray:
        """World position of the camera (3,)."""
        return np.linalg.inv(self.world_to_camera)[:3, 3]

    def view_axis(self) -> np.ndarray:
        """World direction (3,) from the scene towards the camera (the camera's +z axis), unit length."""
        z = np.linalg.inv(self.world_to_camera)[:3, 2]
        return z / np.linalg.norm(z)

    def directions_to_camera(self, points_world: np.ndarray) -> np.ndarray:
        """(N, 3) float32 unit vectors from each point towards the eye (the view axis for orthographic)."""
        p = np.asarray(points_world)
        if self.is_orthographic:
            return np.broadcast_to(self.view_axis().astype(np.float32), (len(p), 3)).copy()
        d = (self.eye().astype(np.float32) - p).astype(np.float32, copy=False)
        d /= np.maximum(np.sqrt(np.einsum("ij,ij->i", d, d)), 1e-20)[:, None]
        return d


def perspective_matrix(lens_mm: float, sensor_mm: float, resolution: tuple[int, int], near: float = 0.1,
                       far: float = 100.0, sensor_fit: str = "AUTO") -> np.ndarray:
    """The OpenGL clip matrix Blender's ``calc_matrix_camera`` gives a perspective camera (no shift,
    square pixels): the sensor spans the larger image side for ``AUTO``, the width for ``HORIZONTAL``,
    the height for ``VERTICAL``."""
    w, h = resolution
    fit = ("HORIZONTAL" if w >= h else "VERTICAL") if sensor_fit == "AUTO" else sensor_fit
    f_px = lens_mm / sensor_mm * (w if fit == "HORIZONTAL" else h)  # focal length in pixels
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = 2.0 * f_px / w, 2.0 * f_px / h
    m[2, 2], m[2, 3] = -(far + near) / (far - near), -2.0 * far * near / (far - near)
    m[3, 2] = -1.0
    return m


def orthographic_matrix(ortho_scale: float, resolution: tuple[int, int], near: float = 0.1,
                        far: float = 100.0) -> np.ndarray:
    """The OpenGL clip matrix of an orthographic camera whose larger image side spans ``ortho_scale`` units."""
    w, h = resolution
    half = 0.5 * ortho_scale
    hx, hy = (half, half * h / w) if w >= h else (half * w / h, half)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = 1.0 / hx, 1.0 / hy
    m[2, 2], m[2, 3] = -2.0 / (far - near), -(far + near) / (far - near)
    m[3, 3] = 1.0
    return m


@dataclass
class ViewRaster:
    """A z-buffered view of triangles, row 0 top: planar ``depth`` (inf empty), ``tri`` (−1 empty) and
    perspective-correct ``bary`` (so attributes such as UVs interpolate as the camera sees them)."""

    depth: np.ndarray  # (H, W) float32
    tri: np.ndarray  # (H, W) int32
    bary: np.ndarray  # (H, W, 3) float32


def rasterize_view(view: CameraView, tri_world: np.ndarray, *, cull_backfaces: bool = False) -> ViewRaster:
    """Z-buffer the (T, 3, 3) world-space triangles into ``view``; a pixel covers its centre.

    Vectorised over triangles (bounding-box enumeration shared with ``rasterize_uv``); the nearest
    triangle per pixel comes from ``np.minimum.at``. Triangles reaching behind the eye plane are dropped
    (no near clipping), so keep the camera outside the geometry it projects onto. ``cull_backfaces``
    drops triangles whose corners appear clockwise (Blender's front faces are counter-clockwise): about
    half the work, and the same depth for closed meshes; leave it off when open surfaces may occlude.
    """
    w, h = view.resolution
    tri_world = np.asarray(tri_world, dtype=np.float64)
    t = len(tri_world)
    xy, d = view.project(tri_world.reshape(-1, 3))
    xy, d = xy.reshape(t, 3, 2), d.reshape(t, 3)
    bad = np.any(d <= MIN_DEPTH, axis=1) | np.any(~np.isfinite(xy), axis=(1, 2))
    if cull_backfaces:  # y grows downwards in pixels: a counter-clockwise triangle has negative area here
        e1, e2 = xy[:, 1] - xy[:, 0], xy[:, 2] - xy[:, 0]
        with np.errstate(invalid="ignore"):
            bad |= ~(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0] < 0)
    xy[bad] = np.nan
    zbuf = np.full(w * h, np.inf, dtype=np.float32)
    tri_buf = np.full(w * h, -1, dtype=np.int32)
    bary_buf = np.zeros((w * h, 3), dtype=np.float32)
    setup = setup_triangles(xy - 0.5, (w, h))
    if setup is None:
        return ViewRaster(zbuf.reshape(h, w), tri_buf.reshape(h, w), bary_buf.reshape(h, w, 3))
    ids = setup.ids
    # 1/depth (perspective) or depth (orthographic) is affine in screen space: per triangle, its
    # coefficients on (dx, dy, 1) from the bounding-box corner, combined in float64 from the edge functions
    d = d[ids]
    inv_w = np.ones_like(d) if view.is_orthographic else 1.0 / d
    val = d if view.is_orthographic else inv_w
    c = setup.cols
    affine = [(c[0][j] * val[:, 0] + c[1][j] * val[:, 1] + c[2][j] * val[:, 2]).astype(np.float32) for j in range(3)]
    iw = [np.ascontiguousarray(inv_w[:, k], dtype=np.float32) for k in range(3)]

    def fragments(part: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        local, dx, dy, pix = span_chunk(setup, part, w)
        z = np.take(affine[0], local) * dx.astype(np.float32)
        z += np.take(affine[1], local) * dy.astype(np.float32)
        z += np.take(affine[2], local)
        if not view.is_orthographic:
            np.maximum(z, np.float32(1e-30), out=z)
            np.divide(np.float32(1.0), z, out=z)
        return local, pix, z

    def winners(hit: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        local, pix, z = hit  # perspective-correct barycentrics of the z-buffer winners only
        win = np.flatnonzero(z <= np.take(zbuf, pix))
        tw, pw = np.take(local, win), np.take(pix, win)
        row = pw // w
        b = setup.barycentrics(tw, pw - row * w, row)
        for k in range(3):
            b[k] *= np.take(iw[k], tw)
        total = b[0] + b[1]
        total += b[2]
        np.maximum(total, np.float32(1e-30), out=total)
        b /= total
        return pw, np.take(ids, tw), np.ascontiguousarray(b.T)

    hits = threads.map_chunks(fragments, span_parts(setup, _SCANLINES))
    for _, pix, z in hits:  # in order, on one thread: ufunc.at is not atomic
        np.minimum.at(zbuf, pix, z)
    bary_rows = bary_buf.view(np.dtype((np.void, 12))).reshape(-1)  # whole (3,) rows: a fast np.put
    for pw, tri, bary in threads.map_chunks(winners, hits):
        np.put(tri_buf, pw, tri)  # in chunk order: on ties (a pixel centre on a shared edge) the later triangle
        np.put(bary_rows, pw, bary.view(bary_rows.dtype).reshape(-1))
    # scan_triangles' row j is pixel y = j, i.e. counted from the top: the buffers are row 0 top already
    return ViewRaster(zbuf.reshape(h, w), tri_buf.reshape(h, w), bary_buf.reshape(h, w, 3))


def bilinear_taps(xy: np.ndarray, size: tuple[int, int]) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Flat indices (4 x (N,) int32) and weights (4 x (N,) float32) of the 2x2 pixels around pixel coords
    ``xy`` (row 0 top, centres at +0.5) in a (W, H) image, clamped at the borders; ``nan`` reads (0, 0).
    Compute once, read many images of the same size with ``read_taps``."""
    w, h = size
    x = np.asarray(xy[:, 0], dtype=np.float32) - np.float32(0.5)
    y = np.asarray(xy[:, 1], dtype=np.float32) - np.float32(0.5)
    np.clip(x, 0, w - 1, out=x)  # nan stays nan, then 0 below
    np.clip(y, 0, h - 1, out=y)
    x0 = np.nan_to_num(x, copy=False).astype(np.int32)
    y0 = np.nan_to_num(y, copy=False).astype(np.int32)
    np.minimum(x0, max(w - 2, 0), out=x0)
    np.minimum(y0, max(h - 2, 0), out=y0)
    fx, fy = x - x0, y - y0
    i00 = y0 * w + x0
    i01, i10 = i00 + (1 if w > 1 else 0), i00 + (w if h > 1 else 0)
    i11 = i10 + (1 if w > 1 else 0)
    w11 = fx * fy
    w01, w10 = fx - w11, fy - w11
    w00 = 1.0 - fx - w10
    return (i00, i01, i10, i11), (w00, w01, w10, w11)


def read_taps(plane: np.ndarray, taps: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]) -> np.ndarray:
    """(N,) float32: one channel, flattened (H*W,) float32, read at ``bilinear_taps``."""
    (i00, i01, i10, i11), (w00, w01, w10, w11) = taps
    acc = np.take(plane, i00) * w00  # np.take: about twice as fast as fancy indexing here
    acc += np.take(plane, i01) * w01
    acc += np.take(plane, i10) * w10
    acc += np.take(plane, i11) * w11
    return acc


def sample_bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(N, C) float32 bilinear samples of an (H, W[, C]) image (row 0 top) at pixel coords (centres at +0.5);
    clamped at the borders. ``nan`` coordinates read pixel (0, 0): mask them out yourself."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    h, w = img.shape[:2]
    taps = bilinear_taps(xy, (w, h))
    out = np.empty((len(xy), img.shape[2]), dtype=np.float32)
    for c in range(img.shape[2]):  # one contiguous plane per channel: 1-D ops, no (N, 3) broadcasting
        out[:, c] = read_taps(np.ascontiguousarray(img[:, :, c], dtype=np.float32).reshape(-1), taps)
    return out
