"""Small scenes for the projection-texturing tests: quads with a [0, 1]² UV layout and cameras."""

from __future__ import annotations

import numpy as np

from addon.core.projection import CameraView, orthographic_matrix, perspective_matrix


def quad(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two triangles of the quad (p00, p10, p11, p01) with UV (0,0), (1,0), (1,1), (0,1): (tri_world, tri_uv)."""
    p = np.asarray(corners, dtype=np.float64)
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    idx = np.array([[0, 1, 2], [0, 2, 3]])
    return p[idx], uv[idx]


def plane_z(z: float = 0.0, half: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned square in the plane z = const, facing +z."""
    return quad(np.array([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]]))


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """world_to_camera of a Blender camera at ``eye`` looking at ``target`` (camera −z forward, +y up)."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    back = eye - target
    back /= np.linalg.norm(back)
    if abs(np.dot(back, up)) > 0.999:
        up = np.array([0.0, 1.0, 0.0])
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    cam_up = np.cross(back, right)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, cam_up, back, eye
    return np.linalg.inv(m)


def persp_view(eye, target, res=(128, 128), lens=50.0, sensor=36.0) -> CameraView:
    return CameraView(look_at(eye, target), perspective_matrix(lens, sensor, res, 0.1, 100.0), res)


def ortho_view(eye, target, res=(128, 128), scale=3.0) -> CameraView:
    return CameraView(look_at(eye, target), orthographic_matrix(scale, res, 0.1, 100.0), res)


def normals_of(tri_world: np.ndarray) -> np.ndarray:
    """(T, 3, 3) flat per-corner normals (right-handed winding)."""
    n = np.cross(tri_world[:, 1] - tri_world[:, 0], tri_world[:, 2] - tri_world[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return np.repeat(n[:, None], 3, axis=1)
