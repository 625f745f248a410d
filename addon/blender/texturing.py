"""Blender helpers of multi-view texturing (``features.texturing`` runs the views as jobs).

- A rig of temporary cameras around the selection (``core.camera_rig``: ``views`` cameras cycling
  through ``elevations``, view 0 from the front), made and removed by name (:func:`make_rig`,
  :func:`remove_rig`): the run holds names across its jobs, never references.
- :func:`isolated`: every other renderable object hidden from renders for the duration of one
  render (passes, depth range, occlusion geometry), never across jobs, so saving mid-run never
  writes them hidden. Rig cameras often stand inside the surrounding scene: with the rest hidden,
  the passes show the targets alone.
- :func:`repaint_mask`: where a later view paints (targets not yet well covered: accumulated
  projection weight below ``coverage_threshold`` — 0.3 ≈ one view at 57° off the normal — and below
  what this view itself would add there, and the background), grown by ``mask_grow_px``.
- :func:`view_image`: a view's result pixels (the job's, as ``run_job`` took them) as float RGB.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import bpy
import numpy as np

from ..core import camera_rig
from ..core.masks import dilate, width_for_radius
from . import compat
from .projection import ProjectionError

#: Name of the temporary collection holding rig cameras while a run lasts.
RIG_COLLECTION = "Scenecast Rig (temporary)"


def check_cameras(cameras: Sequence[Any]) -> list[bpy.types.Object]:
    out = []
    for cam in cameras:
        if not isinstance(cam, bpy.types.Object) or cam.type != "CAMERA":
            raise ProjectionError(f"{getattr(cam, 'name', cam)!r} is not a camera: pass camera objects as views")
        out.append(cam)
    if not out:
        raise ProjectionError("no views: pass views=<number of rig cameras> or a list of camera objects")
    return out


def selection_sphere(objects: Sequence[bpy.types.Object]) -> tuple[np.ndarray, float]:
    """Bounding sphere of the objects' world-space bounding boxes."""
    corners = []
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for obj in objects:
        local = np.array([tuple(c) + (1.0,) for c in obj.bound_box], dtype=np.float64)
        matrix = np.array(compat.world_matrix(obj, depsgraph), dtype=np.float64)
        corners.append((local @ matrix.T)[:, :3])
    return camera_rig.bounding_sphere(np.concatenate(corners))


def make_rig(scene: bpy.types.Scene, objects: Sequence[bpy.types.Object], views: int,
             elevations: Sequence[float], lens_mm: float = 50.0) -> tuple[str, list[str]]:
    """Temporary cameras around ``objects`` in a new collection; returns (collection name, camera names).
    :func:`remove_rig` removes them again (call it in every case)."""
    center, radius = selection_sphere(objects)
    sensor = 36.0
    fov = math.degrees(2.0 * math.atan(sensor / (2.0 * lens_mm)))
    matrices = camera_rig.orbit_rig(center, radius, views, elevations, fov_deg=fov)
    collection = bpy.data.collections.new(RIG_COLLECTION)
    scene.collection.children.link(collection)
    names: list[str] = []
    try:
        for i, m in enumerate(matrices):
            data = bpy.data.cameras.new(f"Scenecast View {i + 1}")
            data.lens, data.sensor_width, data.sensor_fit = lens_mm, sensor, "AUTO"
            distance = float(np.linalg.norm(m[:3, 3] - center))
            data.clip_start = max(1e-3, (distance - radius) * 0.5)
            data.clip_end = distance + radius * 2.0
            cam = bpy.data.objects.new(data.name, data)
            cam.matrix_world = m.T.tolist()  # mathutils takes rows
            collection.objects.link(cam)
            names.append(cam.name)
        bpy.context.view_layer.update()
    except BaseException:
        remove_rig(collection.name, names)
        raise
    return collection.name, names


def remove_rig(collection: str, cameras: Sequence[str]) -> None:
    """Remove the rig's cameras (and their data) and its collection, whatever of them still exists."""
    for name in cameras:
        cam = bpy.data.objects.get(name)
        if cam is None:
            continue
        cam_data = cam.data
        bpy.data.objects.remove(cam)
        if isinstance(cam_data, bpy.types.Camera) and cam_data.users == 0:
            bpy.data.cameras.remove(cam_data)
    found = bpy.data.collections.get(collection)
    if found is not None:
        bpy.data.collections.remove(found)


@contextmanager
def isolated(scene: bpy.types.Scene, objects: Sequence[bpy.types.Object], enabled: bool = True) -> Iterator[None]:
    """Hide every other renderable object from renders inside the ``with`` (restored in every case).

    Use it around one render, never across a job: see the module doc.
    """
    hidden: list[bpy.types.Object] = []
    try:
        if enabled:
            keep = {o.name for o in objects}
            for obj in scene.objects:
                if obj.name not in keep and obj.type not in {"CAMERA", "LIGHT", "EMPTY"} and not obj.hide_render:
                    obj.hide_render = True
                    hidden.append(obj)
        yield
    finally:
        for obj in hidden:
            obj.hide_render = False


def repaint_mask(weight: np.ndarray, mask: np.ndarray, coverage_threshold: float, mask_grow_px: int,
                 facing: np.ndarray | None = None) -> np.ndarray:
    """White (True) where this view should paint: targets not yet well covered, and the background.

    Well covered: the accumulated weight reaches ``coverage_threshold``, or the weight this view
    itself would give (``facing``, its |cos θ|^power per pixel) — a surface seen at a grazing angle
    here and squarely before gains nothing from being painted again.
    """
    enough = np.full(weight.shape, coverage_threshold, dtype=np.float32)
    if facing is not None:
        enough = np.minimum(enough, facing)
    poor = mask & (weight < enough)
    grown = dilate(poor, width_for_radius(mask_grow_px)) if mask_grow_px > 0 else poor
    return grown | ~mask


def view_image(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A view's result (H x W x 3 uint8, ``JobOutcome.image``) as float RGB 0..1, checked to be the
    view's ``size`` (width, height): a model that ignores the size says so here, before projecting."""
    if pixels.shape[1] != size[0] or pixels.shape[0] != size[1]:
        raise ProjectionError(f"the backend returned a {pixels.shape[1]}×{pixels.shape[0]} image for a "
                              f"{size[0]}×{size[1]} view: use a model and size it supports")
    return pixels[..., :3].astype(np.float32) / 255.0
