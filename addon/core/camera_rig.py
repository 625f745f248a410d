"""Cameras around a selection for multi-view texturing: where they stand and where they look.

A rig is ``views`` cameras on a sphere around the selection's bounding sphere, spread evenly in
azimuth and cycling through the requested ``elevations`` (degrees above the horizon), so two rings
interleave instead of stacking. View 0 looks from the front (Blender's −Y side, the Numpad 1 view),
which is the view that generates from scratch, so it should be the one the user cares about most.

Matrices are Blender's: a camera's ``matrix_world`` maps camera space (x right, y up, looking down
−z) to world space (z up). The distance fits the bounding sphere inside the narrower field of view
with ``margin`` (1.1 = 10 % of room around it), so every view sees the whole selection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import numpy as np

#: A point or vector: three floats, or a numpy array of them.
Vec3 = Union[Sequence[float], np.ndarray]

#: Elevations used when the caller names none: a low ring for the sides, a high one for tops.
DEFAULT_ELEVATIONS: tuple[float, ...] = (15.0, 50.0)
#: Azimuth of view 0, degrees counter-clockwise from +X seen from above: −90 is the front (−Y).
FRONT_AZIMUTH = -90.0


def look_at(eye: Vec3, target: Vec3, up: Vec3 = (0.0, 0.0, 1.0)) -> np.ndarray:
    """(4, 4) ``matrix_world`` of a camera at ``eye`` looking at ``target``, its y axis towards ``up``.

    Looking straight along ``up`` (a top or bottom view) uses +Y as up instead, so the matrix is
    always a proper rotation.
    """
    eye_v = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye_v
    norm = np.linalg.norm(forward)
    if norm == 0.0:
        raise ValueError("the camera stands on its target: give it a distance")
    z = -forward / norm
    up_v = np.asarray(up, dtype=np.float64)
    x = np.cross(up_v, z)
    if np.linalg.norm(x) < 1e-9:  # looking along `up`: any horizontal right vector will do
        x = np.cross(np.array([0.0, 1.0, 0.0]), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, eye_v
    return m


def fit_distance(radius: float, fov_deg: float, margin: float = 1.1) -> float:
    """Distance from the centre at which a sphere of ``radius`` fills a ``fov_deg`` view (with margin)."""
    if radius <= 0.0:
        raise ValueError(f"the selection has no size (radius {radius}): select objects with geometry")
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"field of view must be between 0 and 180 degrees, got {fov_deg}")
    return margin * radius / math.sin(math.radians(fov_deg) / 2.0)


def orbit_rig(
    center: Vec3,
    radius: float,
    views: int,
    elevations: Sequence[float] = DEFAULT_ELEVATIONS,
    fov_deg: float = 39.6,
    margin: float = 1.1,
) -> list[np.ndarray]:
    """``views`` camera ``matrix_world``s around a bounding sphere (see the module doc).

    ``fov_deg`` is the narrower field of view of the cameras (39.6° is Blender's default 50 mm lens
    on a 36 mm sensor).
    """
    if views < 1:
        raise ValueError(f"views must be at least 1, got {views}")
    if not elevations:
        raise ValueError("give at least one elevation (degrees above the horizon), e.g. 15")
    for e in elevations:
        if not -90.0 <= e <= 90.0:
            raise ValueError(f"elevation {e} is not between -90 and 90 degrees")
    distance = fit_distance(radius, fov_deg, margin)
    c = np.asarray(center, dtype=np.float64)
    out = []
    for i in range(views):
        azimuth = math.radians(FRONT_AZIMUTH + 360.0 * i / views)
        elevation = math.radians(elevations[i % len(elevations)])
        direction = np.array([
            math.cos(elevation) * math.cos(azimuth),
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
        ])
        out.append(look_at(c + distance * direction, c))
    return out


def bounding_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and radius of a sphere holding ``points`` (N, 3): the box centre, the farthest point."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(pts) == 0:
        raise ValueError("nothing to frame: the selection has no geometry")
    center = (pts.min(axis=0) + pts.max(axis=0)) / 2.0
    return center, float(np.linalg.norm(pts - center, axis=1).max())
