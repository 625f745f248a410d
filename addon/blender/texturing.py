"""Multi-view texturing: generate a texture for objects from several views that agree with each other.

One ``core.job_chain`` generator (``texture_steps``) that ``api.texture_objects`` runs blocking and the
Texture Objects operator runs modal:

1. Cameras: a rig around the selection (``core.camera_rig``: ``views`` cameras cycling through
   ``elevations``, view 0 from the front) made as temporary camera objects, or the user's own cameras.
   One depth range for all views (``extract.scene_depth_range``), so a surface has one grey in all.
2. View 0 generates from depth and edges (and normals when asked): a ``generate`` job.
3. Every later view first renders the texture so far into its own view (``Projector.render_into_view``:
   our own rasteriser, exact and fast) and sends it as the init image of an ``inpaint`` job whose mask
   is white where the view sees the targets' surface not yet *well covered* (accumulated projection
   weight below ``coverage_threshold`` — 0.3 ≈ one view at 57° off the normal — and below what this
   view itself would add there) or sees no target at all, grown by ``mask_grow_px``. The backend repaints only the new parts, so views agree.
4. Each result is projected (``Projector.project``: facing weight, occlusion, feathering) and
   accumulated per texel, and the textures are written after every view so the mesh updates as it
   builds.
5. Texels no view saw (crevices, undersides below the lowest ring) are filled by UV-space colour
   propagation (``core.texture_blend.fill_unseen``): by construction no rig camera sees them, so
   another generated view could not either; propagation is deterministic, fast and seamless, and the
   weights stay 0 there so a later projection (e.g. ``api.project`` from a camera that does see them)
   replaces the fill instead of blending with it.

By default (``isolate``) every other object is hidden from renders while the run lasts: rig cameras
often stand inside the surrounding scene, and the passes should show the targets. A view whose repaint mask is almost empty (< ``MIN_NEW_FRACTION`` of its target pixels) is skipped:
nothing new to add. Cancelling keeps the views finished so far (undo removes them) and always removes
the temporary cameras.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import bpy
import numpy as np

from ..core import camera_rig
from ..core.flow import dilate
from ..core.job_chain import JobSteps
from ..core.png import decode_png
from ..core.remote_job import JobOutcome, JobRequest
from ..core.texture_blend import fill_unseen
from . import compat
from .extract import extract_passes, object_classes, scene_depth_range
from .projection import ProjectionError, Projector, check_objects

#: ControlNet units of the first view (the texture preset's): depth holds shapes, edges keep creases.
FIRST_VIEW_UNITS: tuple[dict[str, Any], ...] = (
    {"type": "depth", "weight": 1.0, "start": 0.0, "end": 1.0},
    {"type": "edges", "weight": 0.6, "start": 0.0, "end": 0.8},
)
#: Units of the later (inpaint) views: the same guidance, so new parts follow the geometry too.
LATER_VIEW_UNITS = FIRST_VIEW_UNITS
#: A view adding less than this fraction of its target pixels is skipped.
MIN_NEW_FRACTION = 0.005
#: Grey of the init image where the view sees no target (repainted anyway): sRGB mid grey.
BACKGROUND_GREY = 128
#: Name of the temporary collection holding rig cameras while a run lasts.
RIG_COLLECTION = "Scenecast Rig (temporary)"


@dataclass
class TextureSettings:
    """What a multi-view texturing run does; ``base_params`` are the job fields shared by all views."""

    base_params: dict[str, Any]  # prompt, negative_prompt, seed, steps, guidance, width, height, preview_every
    request_fields: dict[str, Any]  # JobRequest fields besides params/units/images (server, model, ...)
    texture_size: tuple[int, int] = (1024, 1024)
    material: str = "new"
    units: Sequence[Mapping[str, Any]] = FIRST_VIEW_UNITS
    inpaint_units: Sequence[Mapping[str, Any]] = LATER_VIEW_UNITS
    coverage_threshold: float = 0.3
    mask_grow_px: int = 8
    fill_unseen: bool = True
    isolate: bool = True
    weight_params: dict[str, float] = field(default_factory=dict)


class TextureResult(dict):  # type: ignore[type-arg]
    """``{object: texture image}``, plus what happened: ``coverage`` (object name → fraction of its island
    texels some view saw), ``views`` (per view: camera, job id or skipped), ``notes``, ``files``."""

    def __init__(self, images: Mapping[bpy.types.Object, bpy.types.Image], coverage: dict[str, float],
                 views: list[dict[str, Any]], notes: list[str], files: list[str]) -> None:
        super().__init__(images)
        self.coverage, self.views, self.notes, self.files = coverage, views, notes, files


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


@contextmanager
def rig_cameras(scene: bpy.types.Scene, objects: Sequence[bpy.types.Object], views: int,
                elevations: Sequence[float], lens_mm: float = 50.0) -> Iterator[list[bpy.types.Object]]:
    """Temporary cameras around ``objects`` (see ``core.camera_rig``), removed afterwards in every case."""
    center, radius = selection_sphere(objects)
    sensor = 36.0
    fov = math.degrees(2.0 * math.atan(sensor / (2.0 * lens_mm)))
    matrices = camera_rig.orbit_rig(center, radius, views, elevations, fov_deg=fov)
    collection = bpy.data.collections.new(RIG_COLLECTION)
    scene.collection.children.link(collection)
    made: list[bpy.types.Object] = []
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
            made.append(cam)
        bpy.context.view_layer.update()
        yield made
    finally:
        for cam in made:
            cam_data = cam.data
            bpy.data.objects.remove(cam)
            if isinstance(cam_data, bpy.types.Camera):
                bpy.data.cameras.remove(cam_data)
        bpy.data.collections.remove(collection)


def texture_steps(
    scene: bpy.types.Scene,
    objects: Sequence[bpy.types.Object],
    settings: TextureSettings,
    views: int | Sequence[bpy.types.Object] = 6,
    elevations: Sequence[float] = camera_rig.DEFAULT_ELEVATIONS,
    on_view: Callable[[int, int, str], None] | None = None,
) -> JobSteps[TextureResult]:
    """The multi-view texturing run as a job chain (see the module doc); validates before it yields."""
    objects = check_objects(objects, scene)
    user_cameras = None if isinstance(views, int) else check_cameras(views)
    if isinstance(views, int) and views < 1:
        raise ProjectionError(f"views must be at least 1, got {views}")
    width, height = int(settings.base_params["width"]), int(settings.base_params["height"])
    projector = Projector(objects, settings.texture_size)
    notes = list(projector.notes)
    report = on_view or (lambda i, n, text: None)
    view_log: list[dict[str, Any]] = []
    files: list[str] = []
    cameras_cm = _given(user_cameras) if user_cameras is not None else rig_cameras(scene, objects, int(views), elevations)  # type: ignore[arg-type]
    with cameras_cm as cameras, isolated(scene, objects, settings.isolate):
        depth_range = scene_depth_range(scene, cameras, (width, height))
        classes = object_classes(scene) or None
        count = len(cameras)
        for i, camera in enumerate(cameras):
            report(i, count, f"view {i + 1}/{count}: rendering passes")
            t0 = time.perf_counter()
            passes = extract_passes(scene, camera, (width, height), depth_range=depth_range, classes=classes)
            view = projector.view(camera, (width, height))
            t1 = time.perf_counter()
            request = _request(settings, passes.control, f"{scene.name}_view{i + 1:02d}")
            first = not view_log or all(v.get("skipped") for v in view_log)
            if not first:
                rgb, weight, mask = projector.render_into_view(view)
                power = float(settings.weight_params.get("power", 2.0))
                facing = np.power(np.clip(passes.raw["normal"][..., 2], 0.0, 1.0), power)  # camera space: +z faces the eye
                repaint = _repaint_mask(weight, mask, settings, facing.astype(np.float32))
                new = np.count_nonzero(repaint & mask) / max(np.count_nonzero(mask), 1)
                if not mask.any() or new < MIN_NEW_FRACTION:
                    view_log.append({"camera": camera.name, "skipped": True, "new_fraction": float(new)})
                    report(i, count, f"view {i + 1}/{count}: already covered, skipped")
                    continue
                init = np.where(mask[..., None], np.round(rgb * 255.0), BACKGROUND_GREY).astype(np.uint8)
                request = _inpaint_request(settings, passes.control, init, repaint, request.name)
            report(i, count, f"view {i + 1}/{count}: generating")
            t2 = time.perf_counter()
            outcome: JobOutcome = yield request
            t3 = time.perf_counter()
            image = _read_result(outcome.files[0], (width, height))
            files.extend(outcome.files)
            notes.extend(n for n in outcome.notes if n not in notes)
            report(i, count, f"view {i + 1}/{count}: projecting")
            seen = projector.project(view, image, None, **settings.weight_params)
            t4 = time.perf_counter()
            projector.write(settings.material)  # the mesh shows the texture as it builds
            t5 = time.perf_counter()
            view_log.append({"camera": camera.name, "job_id": outcome.job_id, "model": outcome.model,
                             "first": first, "seen": seen, "timings": {
                                 "passes": t1 - t0, "render_back": t2 - t1, "job": t3 - t2,
                                 "project": t4 - t3, "write": t5 - t4}})
    if settings.fill_unseen:
        for target in projector.targets:
            target.color = fill_unseen(target.color, target.weight, target.samples.covered_mask())
    written = projector.write(settings.material)
    coverage = {t.name: t.coverage() for t in projector.targets}
    for name, c in coverage.items():
        if c < 0.99:
            notes.append(f"{name!r}: {100 * (1 - c):.1f}% of its texels no view saw, filled from their"
                         " neighbours; add views (elevations below 0 see undersides) to cover them")
    for texture in written.values():
        texture["scenecast_views"] = len([v for v in view_log if not v.get("skipped")])
    return TextureResult(written, coverage, view_log, notes, files)


@contextmanager
def isolated(scene: bpy.types.Scene, objects: Sequence[bpy.types.Object], enabled: bool = True) -> Iterator[None]:
    """Hide every other renderable object from renders while the run lasts (restored in every case).

    Rig cameras stand around the selection, often inside walls of the surrounding scene: with the
    rest hidden, the passes show the targets alone and only they occlude each other.
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


@contextmanager
def _given(cameras: list[bpy.types.Object]) -> Iterator[list[bpy.types.Object]]:
    yield cameras


def _repaint_mask(weight: np.ndarray, mask: np.ndarray, settings: TextureSettings,
                  facing: np.ndarray | None = None) -> np.ndarray:
    """White (True) where this view should paint: targets not yet well covered, and the background.

    Well covered: the accumulated weight reaches ``coverage_threshold``, or the weight this view
    itself would give (``facing``, its |cos θ|^power per pixel) — a surface seen at a grazing angle
    here and squarely before gains nothing from being painted again.
    """
    enough = np.full(weight.shape, settings.coverage_threshold, dtype=np.float32)
    if facing is not None:
        enough = np.minimum(enough, facing)
    poor = mask & (weight < enough)
    grown = dilate(poor, settings.mask_grow_px) if settings.mask_grow_px > 0 else poor
    return grown | ~mask


def _request(settings: TextureSettings, control: Mapping[str, np.ndarray], name: str) -> JobRequest:
    return JobRequest(params=dict(settings.base_params), units=[dict(u) for u in settings.units],
                      images=dict(control), name=name, **settings.request_fields)


def _inpaint_request(settings: TextureSettings, control: Mapping[str, np.ndarray], init: np.ndarray,
                     repaint: np.ndarray, name: str) -> JobRequest:
    params = dict(settings.base_params)
    params["preset"] = {"stages": [{"type": "inpaint", "image": "init", "mask": "mask", "strength": 1.0}]}
    mask_rgb = np.repeat((repaint.astype(np.uint8) * 255)[..., None], 3, axis=2)
    images = {**control, "init": init, "mask": mask_rgb}
    return JobRequest(params=params, units=[dict(u) for u in settings.inpaint_units], images=images,
                      name=name, **settings.request_fields)


def _read_result(path: str, size: tuple[int, int]) -> np.ndarray:
    with open(path, "rb") as fh:
        pixels = decode_png(fh.read())
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    if pixels.shape[1] != size[0] or pixels.shape[0] != size[1]:
        raise ProjectionError(f"the backend returned a {pixels.shape[1]}×{pixels.shape[0]} image for a "
                              f"{size[0]}×{size[1]} view: use a model and size it supports")
    scale = 65535.0 if pixels.dtype == np.uint16 else 255.0
    return pixels[..., :3].astype(np.float32) / scale
