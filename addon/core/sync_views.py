"""Correspondences for synchronized multi-view texturing: which texel of one shared texture each view
pixel sees, and how much that pixel is worth there.

The shared texture is every target's texels packed one after another (``PackedTexels``: target k's
``TexelSamples.index`` in order, after those of targets 0..k-1), so the backend works on one (M, C)
array whatever the number of objects and never needs their UV layouts. For each view and each level
(the latent grid, e.g. 64x64 for a 512x512 image, and the image grid) ``view_correspondence`` gives

* ``index`` (H, W) int32: the packed texel under the pixel centre, ``-1`` for background, for surfaces
  that are not targets (occluders) and for pixels whose UV falls outside every island;
* ``weight`` (H, W) float32: ``|cos θ| ** power`` (θ: the surface normal vs the direction to the eye),
  0 past ``cutoff_deg`` and where ``index`` is -1.

Occlusion comes from the z-buffer (``projection.rasterize_view`` over targets *and* occluders): a pixel
only ever names the nearest surface, so hidden texels get nothing. ``|cos|`` rather than ``max(cos, 0)``
because a texel has one colour for both sides of an open surface.

Use a coarse texture for the latent level (each latent pixel covers 8x8 image pixels; with a texture as
fine as the image, views would rarely share a texel and there would be nothing to fuse) and the final
texture for the image level. ``encode`` / ``decode`` are the wire format (docs/protocol.md,
"Correspondence part"). Row 0 is the top of a view, the bottom of a texture, as everywhere in core.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .projection import CameraView, ViewRaster
from .uv_raster import TexelSamples

#: First bytes of an encoded correspondence part.
MAGIC = b"SCCR"
VERSION = 1
#: The multipart part's ``Content-Type``.
CONTENT_TYPE = "application/x-scenecast-correspondence"
#: Rings of untextured texels around each island that still resolve to the nearest island texel: a
#: pixel near a UV seam whose UV lands just outside the island's texel centres keeps a texel.
SEAM_RINGS = 2


def at_resolution(view: CameraView, resolution: tuple[int, int]) -> CameraView:
    """The same camera rendered at another (W, H) of the same aspect (the latent grid of a view)."""
    w0, h0 = view.resolution
    w, h = int(resolution[0]), int(resolution[1])
    if abs(w * h0 - h * w0) > max(w0, h0):  # integer sizes: allow rounding of one pixel
        raise ValueError(f"{w}x{h} does not have the aspect of the view's {w0}x{h0}")
    return dataclasses.replace(view, resolution=(w, h))


class PackedTexels:
    """Every target's texels as one list: packed id = ``offsets[k]`` + position in target k's samples.

    ``layouts``: per target, its (T_k, 3, 2) UV triangles and the ``TexelSamples`` rasterised from them.
    The scene's triangles for ``rasterize_view`` are the targets' in this order, then any occluders:
    ``owner`` maps a global triangle id to (target, local triangle).
    """

    def __init__(self, layouts: Sequence[tuple[np.ndarray, TexelSamples]], seam_rings: int = SEAM_RINGS) -> None:
        self.sizes = [s.size for _, s in layouts]
        counts = [len(s.index) for _, s in layouts]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.count = int(self.offsets[-1])
        if self.count >= 2**31:
            raise ValueError(f"{self.count} texels do not fit int32 ids: use smaller textures")
        tri_counts = [len(uv) for uv, _ in layouts]
        self.tri_offsets = np.concatenate([[0], np.cumsum(tri_counts)]).astype(np.int64)
        self.tri_uv = (np.concatenate([np.asarray(uv, np.float64).reshape(-1, 3, 2) for uv, _ in layouts])
                       if layouts else np.zeros((0, 3, 2)))
        self.tri_target = np.repeat(np.arange(len(layouts), dtype=np.int32), tri_counts)
        self.lookup = [self._table(s, int(self.offsets[k]), seam_rings) for k, (_, s) in enumerate(layouts)]

    @property
    def triangles(self) -> int:
        """Triangles of all targets (global ids ``0..triangles-1``; occluders come after)."""
        return int(self.tri_offsets[-1])

    @staticmethod
    def _table(samples: TexelSamples, offset: int, rings: int) -> np.ndarray:
        """(H, W) int32 packed id per texel (row 0 bottom), grown ``rings`` rings outside the islands."""
        w, h = samples.size
        table = np.full(h * w, -1, dtype=np.int32)
        table[samples.index] = offset + np.arange(len(samples.index), dtype=np.int32)
        table = table.reshape(h, w)
        for _ in range(rings):
            grown = table.copy()
            for axis, step in ((0, 1), (0, -1), (1, 1), (1, -1)):  # 4-neighbours: the nearest texel by rows/cols
                shifted = np.full_like(table, -1)
                src = [slice(None)] * 2
                dst = [slice(None)] * 2
                src[axis] = slice(0, -1) if step == 1 else slice(1, None)
                dst[axis] = slice(1, None) if step == 1 else slice(0, -1)
                shifted[tuple(dst)] = table[tuple(src)]
                take = (grown < 0) & (shifted >= 0)
                grown[take] = shifted[take]
            table = grown
        return table

    def texels_at(self, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
        """(P,) int32 packed ids at points given by global triangle ids (P,) and barycentrics (P, 3);
        -1 for triangles past the targets' (occluders) and UVs outside every island."""
        tri = np.asarray(tri, dtype=np.int64)
        out = np.full(len(tri), -1, dtype=np.int32)
        ours = np.flatnonzero((tri >= 0) & (tri < self.triangles))
        if not len(ours):
            return out
        t = tri[ours]
        uv = np.einsum("pkc,pk->pc", self.tri_uv[t], np.asarray(bary, np.float64)[ours])
        target = self.tri_target[t]
        for k, table in enumerate(self.lookup):
            sel = np.flatnonzero(target == k)
            if not len(sel):
                continue
            w, h = self.sizes[k]
            col = np.clip(np.floor(uv[sel, 0] * w), 0, w - 1).astype(np.int64)
            row = np.clip(np.floor(uv[sel, 1] * h), 0, h - 1).astype(np.int64)
            out[ours[sel]] = table.reshape(-1)[row * w + col]
        return out


def view_correspondence(view: CameraView, raster: ViewRaster, packed: PackedTexels, tri_world: np.ndarray,
                        tri_normals: np.ndarray, *, power: float = 1.0, cutoff_deg: float = 90.0
                        ) -> tuple[np.ndarray, np.ndarray]:
    """``index`` (H, W) int32 and ``weight`` (H, W) float32 of one view at ``raster``'s resolution.

    ``raster`` is ``rasterize_view(view, tri_world)`` at that resolution (``at_resolution`` for the latent
    grid); ``tri_world`` / ``tri_normals`` (T, 3, 3) are the targets' triangles in ``packed`` order, then
    the occluders'. Normals are interpolated per pixel (smooth shading counts as the texel's facing).
    """
    h, w = raster.depth.shape
    if (w, h) != view.resolution:
        raise ValueError(f"raster is {w}x{h} but the view is {view.resolution[0]}x{view.resolution[1]}")
    tri = raster.tri.reshape(-1)
    bary = raster.bary.reshape(-1, 3)
    index = np.full(h * w, -1, dtype=np.int32)
    weight = np.zeros(h * w, dtype=np.float32)
    hit = np.flatnonzero(tri >= 0)
    if len(hit):
        t, b = tri[hit], bary[hit]
        ids = packed.texels_at(t, b)
        keep = np.flatnonzero(ids >= 0)
        hit, t, b, ids = hit[keep], t[keep], b[keep], ids[keep]
        tw = np.asarray(tri_world, np.float32)
        points = np.einsum("pkc,pk->pc", tw[t], b)
        normals = np.einsum("pkc,pk->pc", np.asarray(tri_normals, np.float32)[t], b)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), np.float32(1e-20))
        cos = np.abs(np.einsum("pc,pc->p", normals, view.directions_to_camera(points)))
        cos[cos < max(math.cos(math.radians(cutoff_deg)), 0.0)] = 0.0
        index[hit] = ids
        weight[hit] = cos if power == 1 else np.power(cos, np.float32(power))
    return index.reshape(h, w), weight.reshape(h, w)


def view_suffix(view: CameraView, target: Sequence[float] = (0.0, 0.0, 0.0)) -> str:
    """A prompt suffix for a view-dependent prompt: "front view", "side view", "back view", "top view" or
    "bottom view", from where the camera is seen from ``target`` (Blender axes: the front faces -Y, +Z up;
    perspective: the eye's direction, orthographic: the view axis)."""
    d = view.view_axis() if view.is_orthographic else view.eye() - np.asarray(target, dtype=np.float64)
    d = d / max(float(np.linalg.norm(d)), 1e-12)
    x, y, z = (float(c) for c in d)
    if z > 0.8:
        return "top view"
    if z < -0.8:
        return "bottom view"
    if -y >= abs(x):
        return "front view"
    if y >= abs(x):
        return "back view"
    return "side view"


def strip_values(strip: np.ndarray, count: int) -> np.ndarray:
    """(count, C) packed texel values of a backend texture/weight strip (rows of ``texture_width`` texels,
    row 0 top, the last row zero-padded; docs/protocol.md): the inverse of the backend's layout."""
    s = np.asarray(strip)
    flat = s.reshape(-1, s.shape[2]) if s.ndim == 3 else s.reshape(-1, 1)
    if len(flat) < count:
        raise ValueError(f"the strip holds {len(flat)} texels, fewer than the {count} packed")
    return flat[:count]


def unpack(packed: "PackedTexels", values: np.ndarray, target: int, samples: TexelSamples,
           fill: float = 0.0) -> np.ndarray:
    """Target ``target``'s (H, W, C) texture (row 0 bottom, like ``Image.pixels``) from packed ``values``
    (M, C): its texels at ``samples.index``, ``fill`` elsewhere. ``samples`` must be the ones packed."""
    a, b = int(packed.offsets[target]), int(packed.offsets[target + 1])
    if b - a != len(samples.index):
        raise ValueError(f"target {target} packed {b - a} texels but these samples have {len(samples.index)}")
    w, h = samples.size
    vals = np.asarray(values)[a:b]
    vals = vals.reshape(len(vals), -1)
    out = np.full((h * w, vals.shape[1]), fill, dtype=vals.dtype if vals.dtype.kind == "f" else np.float32)
    out[samples.index] = vals
    return out.reshape(h, w, vals.shape[1])


@dataclass
class Level:
    """One grid's correspondences for all N views: ``index`` (N, H, W) int32, ``weight`` (N, H, W) float32
    (float16 on the wire), into a packed texture of ``texels`` texels."""

    name: str
    index: np.ndarray
    weight: np.ndarray
    texels: int

    def __post_init__(self) -> None:
        self.index = np.asarray(self.index, dtype=np.int32)
        self.weight = np.asarray(self.weight, dtype=np.float32)
        if self.index.ndim != 3 or self.index.shape != self.weight.shape:
            raise ValueError(f"level {self.name!r}: index {self.index.shape} and weight {self.weight.shape} "
                             "must both be (views, H, W)")
        if self.index.size and (self.index.max() >= self.texels or self.index.min() < -1):
            raise ValueError(f"level {self.name!r}: texel ids must be -1 or in [0, {self.texels})")


def _pad8(n: int) -> int:
    return (-n) % 8


def encode(levels: Sequence[Level], *, power: float = 1.0, compress: bool = True) -> bytes:
    """The correspondence part's bytes: ``SCCR``, u32 version, u32 header length, JSON header (space
    padded to 8 bytes), then the payload (zlib when ``compression`` says so): per level in header order,
    ``index`` int32 LE then ``weight`` float16 LE, each C order (view, row from the top, column) and
    zero-padded to 8 bytes."""
    if not levels:
        raise ValueError("no levels to encode")
    views = levels[0].index.shape[0]
    chunks = []
    for lv in levels:
        if lv.index.shape[0] != views:
            raise ValueError(f"level {lv.name!r} has {lv.index.shape[0]} views, {levels[0].name!r} {views}")
        for arr in (lv.index.astype("<i4"), lv.weight.astype("<f2")):
            raw = arr.tobytes()
            chunks.append(raw + b"\0" * _pad8(len(raw)))
    payload = b"".join(chunks)
    header = {"format": "scenecast-correspondence", "version": VERSION, "views": views, "power": float(power),
              "weight_dtype": "float16", "compression": "zlib" if compress else "none",
              "levels": [{"name": lv.name, "width": int(lv.index.shape[2]), "height": int(lv.index.shape[1]),
                          "texels": int(lv.texels)} for lv in levels]}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * _pad8(len(text))
    if compress:
        payload = zlib.compress(payload, 6)
    return MAGIC + struct.pack("<II", VERSION, len(text)) + text + payload


def decode(data: bytes, max_pixels: int = 1 << 28) -> tuple[dict, list[Level]]:
    """Header and levels of ``encode``'s bytes; ``ValueError`` saying what is wrong otherwise."""
    if len(data) < 12 or data[:4] != MAGIC:
        raise ValueError("not a correspondence part (it must start with b'SCCR')")
    version, hlen = struct.unpack("<II", data[4:12])
    if version != VERSION:
        raise ValueError(f"correspondence format version {version}; this side reads {VERSION}")
    try:
        header = json.loads(data[12:12 + hlen])
        levels_meta = header["levels"]
        views = int(header["views"])
        shapes = [(str(m["name"]), int(m["height"]), int(m["width"]), int(m["texels"])) for m in levels_meta]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"bad correspondence header: {exc}") from exc
    if sum(views * hh * ww for _, hh, ww, _ in shapes) > max_pixels:
        raise ValueError("correspondence too large")
    payload = data[12 + hlen:]
    if header.get("compression") == "zlib":
        d = zlib.decompressobj()
        payload = d.decompress(payload, max_pixels * 6 + 64)
        if d.unconsumed_tail:
            raise ValueError("correspondence payload larger than its header says")
    levels, at = [], 0
    for name, hh, ww, texels in shapes:
        n = views * hh * ww
        arrays = []
        for dtype, size in (("<i4", 4), ("<f2", 2)):
            end = at + n * size
            if end > len(payload):
                raise ValueError(f"correspondence payload ends inside level {name!r}")
            arrays.append(np.frombuffer(payload, dtype=dtype, count=n, offset=at).reshape(views, hh, ww))
            at = end + _pad8(n * size)
        levels.append(Level(name, arrays[0], arrays[1].astype(np.float32), texels))
    return header, levels
