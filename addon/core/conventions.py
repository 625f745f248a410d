"""Every convention of Scenecast's ControlNet images, defined once.

Shared by all control images:

- **Orientation**: row 0 is the *top* of the image in every array (input and output). Blender's
  ``Image.pixels`` and render results start at the bottom row; ``addon/blender`` flips them before
  anything here sees them (``flip_rows`` helps).
- **Colour space**: control images are plain 8-bit values, uint8, RGB, with *no* sRGB transfer
  function applied. A depth value of 0.5 is stored as 128, not as sRGB(0.5). When such an image is
  loaded into Blender its colour space must be "Non-Color".
- **Background** (no surface hit by the camera ray) is black, ``BACKGROUND_RGB``, in every control
  image: depth, normal, edges and segmentation.
- **Camera space** is Blender's: x to the right, y up, +z towards the viewer; the camera looks down −z.
- **Object ids**: (H, W) int32, ``BACKGROUND_ID`` (−1) where no object was hit.
- **Depth** is planar: the distance along the view axis (= −z in camera space), in scene units,
  ``inf`` where there is no surface. Not the Euclidean distance to the camera centre.

Colour images (the clay/colour render sent to img2img, the images projected onto textures) are the
other way round: they *are* sRGB-encoded. Blender's float pixels are scene-linear (Rec.709
primaries); :func:`linear_to_srgb` / :func:`linear_to_srgb8` are the one encoder used for both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The colour of "no surface" in every control image (0, 0, 0): black.
BACKGROUND_RGB: tuple[int, int, int] = (0, 0, 0)
#: ``object_id`` value of pixels where no object was hit. Ids of objects are 0, 1, 2, ... (Blender's
#: IndexOB pass writes 0 for background, so ``addon/blender`` subtracts 1 from ``pass_index`` numbering).
BACKGROUND_ID: int = -1
#: Brightest 8-bit value; a surface exactly at ``near`` gets it in the depth image, edges are drawn in it.
WHITE: int = 255
#: Names of the depth mappings ``depth_to_control`` accepts.
DEPTH_MAPPINGS: tuple[str, ...] = ("inverse", "linear")
#: Default depth mapping: disparity-like, as the MiDaS maps ControlNet depth models were trained on.
DEFAULT_DEPTH_MAPPING: str = "inverse"
#: Relative margin added around the scene bounds by ``depth_range_from_bounds``.
DEFAULT_DEPTH_MARGIN: float = 0.05


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Scene-linear (Rec.709 primaries) → sRGB-encoded values (IEC 61966-2-1), both 0..1 float32,
    clipped to 0..1 first (no HDR: values above 1 encode as 1). Computed in float64."""
    x = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055).astype(np.float32)


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """:func:`linear_to_srgb` as 8-bit values 0..255 (uint8, rounded to nearest)."""
    x = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)
    return np.rint(srgb * 255.0).astype(np.uint8)


@dataclass(frozen=True)
class DepthRange:
    """The near/far planar distances (scene units) a job's depth images are normalised against.

    One range per job, shared by every view and frame, so the same surface gets the same grey in all
    of them (never per-image min/max, which would make depth flicker across an animation).
    """

    near: float
    far: float

    def __post_init__(self) -> None:
        near, far = float(self.near), float(self.far)
        if not (math.isfinite(near) and math.isfinite(far)):
            raise ValueError(f"depth range must be finite, got near={near}, far={far}")
        if not 0.0 < near < far:
            raise ValueError(
                f"depth range needs 0 < near < far, got near={near}, far={far}:"
                " set near to the closest and far to the farthest distance the camera sees"
            )
        object.__setattr__(self, "near", near)
        object.__setattr__(self, "far", far)


def depth_range_from_bounds(
    corners_cam_z: np.ndarray,
    margin: float = DEFAULT_DEPTH_MARGIN,
    min_near: float | None = None,
) -> DepthRange:
    """A job's depth range from scene bounding-box corners.

    ``corners_cam_z``: planar distances of the corners along the view axis, in scene units, positive in
    front of the camera (i.e. ``-z`` of the corners in Blender camera space). Any shape; pass the
    corners of every object, seen from every view and frame of the job, to get the one shared range.

    ``near`` shrinks and ``far`` grows by ``margin`` (relative), so the nearest surface is a little
    below 255 and the farthest a little above 0 (distinct from the black background). Non-positive
    distances (corners behind the camera) are ignored, and ``near`` is at least ``min_near`` (default
    ``far * 1e-3``; pass the camera's clip start).

    Raw corners mislead when a box reaches behind or beside the camera (a large ground plane: its
    corners are far, the floor in view is near, and it would come out saturated white): pass the
    depths from ``bounds.visible_box_depths`` — the boxes clipped to the view frustum — instead.
    """
    d = np.asarray(corners_cam_z, dtype=np.float64).ravel()
    d = d[np.isfinite(d)]
    if d.size == 0 or d.max() <= 0.0:
        raise ValueError(
            "no bounding-box corner is in front of the camera: pass positive distances along the view"
            " axis (-z in Blender camera space), or point the camera at the scene"
        )
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    far = float(d.max()) * (1.0 + margin)
    floor = far * 1e-3 if min_near is None else float(min_near)
    front = d[d > 0.0]
    near = max(float(front.min()) * (1.0 - margin), floor)
    if near >= far:  # a flat scene seen edge-on, or min_near beyond it
        near = far * 0.5
    return DepthRange(near, far)


def widen_to_cover(rng: DepthRange, depth: np.ndarray, margin: float = DEFAULT_DEPTH_MARGIN) -> DepthRange:
    """``rng`` grown (never shrunk) to hold every finite depth of a rendered pass, with ``margin``.

    Bounds come from the objects Blender's viewport evaluates; a render can show more (objects hidden
    in the viewport only, render-time instances). Widening keeps those surfaces from clipping to
    black or white. Only for a range the job computed itself from one view: a range the user or a
    multi-view job fixed is never touched.
    """
    d = np.asarray(depth, dtype=np.float64)
    d = d[np.isfinite(d) & (d > 0.0)]
    if d.size == 0:
        return rng
    near = min(rng.near, float(d.min()) * (1.0 - margin))
    far = max(rng.far, float(d.max()) * (1.0 + margin))
    return rng if (near, far) == (rng.near, rng.far) else DepthRange(near, far)


def depth_to_control(
    depth: np.ndarray, rng: DepthRange, mapping: str = DEFAULT_DEPTH_MAPPING
) -> np.ndarray:
    """A ControlNet depth image from planar depth: near bright, far dark, background black.

    ``depth``: (H, W) planar distance along the view axis in scene units (row 0 top), ``inf`` where
    there is no surface. ``mapping``:

    - ``"inverse"`` (default): ``v = (1/d − 1/far) / (1/near − 1/far)`` — disparity-like, like the
      MiDaS relative inverse depth ControlNet depth models were trained on; near detail gets more grey
      levels, as in those maps.
    - ``"linear"``: ``v = (far − d) / (far − near)``.

    ``v`` is clipped to [0, 1] and rounded to 0..255; a surface exactly at ``near`` is 255. Background
    (inf, nan, d <= 0, d > far) is 0. Returns (H, W, 3) uint8, grey in all three channels, no sRGB:
    a read-only ``grey_channels`` view of one plane.
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {d.shape}")
    if mapping not in DEPTH_MAPPINGS:
        raise ValueError(f"unknown depth mapping {mapping!r}; use one of {', '.join(DEPTH_MAPPINGS)}")
    valid = np.isfinite(d) & (d > 0.0) & (d <= rng.far)
    safe = np.where(valid, d, rng.far)
    if mapping == "inverse":
        v = (1.0 / safe - 1.0 / rng.far) / (1.0 / rng.near - 1.0 / rng.far)
    else:
        v = (rng.far - safe) / (rng.far - rng.near)
    v = np.clip(v, 0.0, 1.0)
    grey = np.where(valid, np.rint(v * WHITE), BACKGROUND_RGB[0]).astype(np.uint8)
    return grey_channels(grey)


def grey_channels(grey: np.ndarray) -> np.ndarray:
    """(H, W) uint8 -> (H, W, 3): the plane seen in three channels (read-only, stride 0 across them).

    Grey control images stay one plane: no 3 bytes a pixel to fill (~4 ms at 1024² with ``np.repeat``),
    and the client sends the plane as it is (one channel, no copy; ``core.client``). Whoever needs a
    writable array takes a copy."""
    return np.broadcast_to(grey[:, :, None], grey.shape + (3,))


def control_to_depth(
    control: np.ndarray, rng: DepthRange, mapping: str = DEFAULT_DEPTH_MAPPING
) -> np.ndarray:
    """Inverse of ``depth_to_control`` (up to 8-bit quantisation): planar depth, ``inf`` where 0."""
    c = np.asarray(control)
    v = (c[..., 0] if c.ndim == 3 else c).astype(np.float64) / WHITE
    if mapping == "inverse":
        inv = v * (1.0 / rng.near - 1.0 / rng.far) + 1.0 / rng.far
        d = 1.0 / inv
    elif mapping == "linear":
        d = rng.far - v * (rng.far - rng.near)
    else:
        raise ValueError(f"unknown depth mapping {mapping!r}; use one of {', '.join(DEPTH_MAPPINGS)}")
    return np.where(v > 0.0, d, np.inf).astype(np.float32)


def normals_to_control(normal_cam: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A ControlNet 1.1 normal image ("NormalBae": blue is front, red is left, green is top).

    ``normal_cam``: (H, W, 3) unit normals in Blender camera space (x right, y up, +z towards the
    viewer). ``mask``: (H, W) bool, True where a surface was hit. Row 0 top.

    ``R = (1 − n_x)/2``: a surface facing left (n_x = −1) is red — "red is left";
    ``G = (1 + n_y)/2``: facing up is green — "green is top";
    ``B = (1 + n_z)/2``: facing the camera is blue — "blue is front";
    each ×255 and rounded. A wall facing the camera is (128, 128, 255).

    Background is black (0, 0, 0): that colour encodes the direction (1, −1, −1), right-down-*away*
    from the viewer, which no visible surface can have (visible surfaces have B ≥ ~128), so the model
    cannot mistake it for geometry. The alternative, "flat facing the camera" (128, 128, 255), would
    read as a wall behind the objects, and leaving garbage normals would invent shapes in the sky.
    """
    n = np.asarray(normal_cam, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if n.ndim != 3 or n.shape[2] != 3:
        raise ValueError(f"normal_cam must be (H, W, 3), got shape {n.shape}")
    if m.shape != n.shape[:2]:
        raise ValueError(f"mask shape {m.shape} does not match normals {n.shape[:2]}")
    n = np.nan_to_num(n, nan=0.0, posinf=0.0, neginf=0.0)
    rgb = np.stack([(1.0 - n[..., 0]) * 0.5, (1.0 + n[..., 1]) * 0.5, (1.0 + n[..., 2]) * 0.5], axis=-1)
    out = np.rint(np.clip(rgb, 0.0, 1.0) * WHITE).astype(np.uint8)
    out[~m] = BACKGROUND_RGB
    return out


def control_to_normals(control: np.ndarray) -> np.ndarray:
    """Inverse of ``normals_to_control`` (up to quantisation): (H, W, 3) camera-space unit normals."""
    c = np.asarray(control, dtype=np.float64)[..., :3] / WHITE
    n = np.stack([1.0 - 2.0 * c[..., 0], 2.0 * c[..., 1] - 1.0, 2.0 * c[..., 2] - 1.0], axis=-1)
    return _normalise(n).astype(np.float32)


def normals_world_to_camera(normal_world: np.ndarray, cam_rotation_3x3_world_from_cam: np.ndarray) -> np.ndarray:
    """World-space normals (..., 3) into Blender camera space, renormalised.

    ``cam_rotation_3x3_world_from_cam`` is the rotation part of the camera's ``matrix_world`` (columns
    are the camera's x, y, z axes in world space). Normals are directions, so only the inverse rotation
    applies: ``n_cam = Rᵀ n_world``. Any scale in the matrix is removed by orthonormalising it first,
    and the result is renormalised (zero vectors stay zero).
    """
    r = np.asarray(cam_rotation_3x3_world_from_cam, dtype=np.float64)
    if r.shape != (3, 3):
        raise ValueError(f"camera rotation must be 3x3, got shape {r.shape}")
    u, _, vt = np.linalg.svd(r)
    rot = u @ vt  # nearest rotation: strips scale from matrix_world's 3x3
    n = np.asarray(normal_world, dtype=np.float64)
    cam = n @ rot  # row vectors: (Rᵀ n)ᵀ = nᵀ R
    return _normalise(cam).astype(np.float32)


def flip_rows(image: np.ndarray) -> np.ndarray:
    """Bottom-row-first (Blender pixels) ↔ top-row-first (every array here); returns a contiguous copy."""
    return np.ascontiguousarray(np.asarray(image)[::-1])


def _normalise(v: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, length, out=np.zeros_like(v), where=length > 1e-12)
