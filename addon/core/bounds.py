"""Which depths of the scene's bounding boxes a camera can see: boxes clipped to the view frustum.

A job's depth range comes from bounding boxes (``conventions.depth_range_from_bounds``), but a box's
corners say little when the box reaches behind or beside the camera: a 200 m ground plane has its
corners 100 m away while the floor in the bottom of the frame is 2 m away. Clipping each face of each
box (a convex polygon) to the frustum gives the depths its surface can have in the image: the nearest
and farthest points of a clipped polygon are among its vertices. Surfaces, not solids: a camera inside
a box sees its walls, not the air around the lens.

Camera space is Blender's (x right, y up, the camera looks down −z); depth is planar (−z).
"""

from __future__ import annotations

import numpy as np

#: The 6 faces of a box whose 8 corners are in Blender's ``Object.bound_box`` order
#: (−x−y−z, −x−y+z, −x+y+z, −x+y−z, +x−y−z, +x−y+z, +x+y+z, +x+y−z); any affine image keeps them.
BOX_FACES: tuple[tuple[int, int, int, int], ...] = (
    (0, 1, 2, 3), (4, 7, 6, 5), (0, 4, 5, 1), (3, 2, 6, 7), (0, 3, 7, 4), (1, 5, 6, 2),
)  # fmt: skip


def frustum_planes(projection: np.ndarray) -> np.ndarray:
    """(6, 4) planes ``a·p >= 0`` (p homogeneous camera-space) of the volume ``-w <= x, y, z <= w``
    in clip space of ``projection`` (OpenGL-style, as ``Object.calc_matrix_camera`` returns; it
    includes the clip start/end planes; perspective or orthographic)."""
    p = np.asarray(projection, dtype=np.float64)
    if p.shape != (4, 4):
        raise ValueError(f"projection must be 4x4, got shape {p.shape}")
    return np.array([p[3] + p[0], p[3] - p[0], p[3] + p[1], p[3] - p[1], p[3] + p[2], p[3] - p[2]])


def clip_polygon(polygon: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """A convex polygon (k, 4) clipped to the half-spaces ``planes`` (Sutherland–Hodgman); (m, 4)."""
    poly = np.asarray(polygon, dtype=np.float64)
    for plane in planes:
        if len(poly) == 0:
            break
        dist = poly @ plane
        nxt = np.roll(poly, -1, axis=0)
        dnext = np.roll(dist, -1)
        out = []
        for i in range(len(poly)):
            if dist[i] >= 0:
                out.append(poly[i])
            if (dist[i] >= 0) != (dnext[i] >= 0):
                t = dist[i] / (dist[i] - dnext[i])
                out.append(poly[i] + t * (nxt[i] - poly[i]))
        poly = np.array(out).reshape(-1, 4)
    return poly


def visible_box_depths(corners_cam: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """Planar depths (scene units, −z) of the faces of every box, clipped to the camera's view frustum.

    ``corners_cam``: (N, 8, 3) or (N, 8, 4) box corners in camera space, in ``bound_box`` order
    (``world_to_camera @ matrix_world @ corner``). Returns the depths of all vertices of the clipped
    boxes (boxes outside the frustum add nothing); feed them, over every view and frame of a job, to
    ``depth_range_from_bounds``.
    """
    c = np.asarray(corners_cam, dtype=np.float64)
    if c.ndim != 3 or c.shape[1] != 8 or c.shape[2] not in (3, 4):
        raise ValueError(f"corners must be (N, 8, 3) or (N, 8, 4), got shape {c.shape}")
    if c.shape[2] == 3:
        c = np.concatenate([c, np.ones(c.shape[:2] + (1,))], axis=2)
    planes = frustum_planes(projection)
    # Whole boxes inside every plane need no clipping; boxes beyond one plane are culled.
    dist = c @ planes.T  # (N, 8, 6)
    inside = (dist >= 0).all(axis=(1, 2))
    culled = (dist < 0).all(axis=1).any(axis=1)
    depths = [-c[inside][..., 2].ravel()]
    for box in c[~inside & ~culled]:
        for face in BOX_FACES:
            clipped = clip_polygon(box[list(face)], planes)
            if len(clipped):
                depths.append(-clipped[:, 2])
    return np.concatenate(depths) if depths else np.zeros(0)
