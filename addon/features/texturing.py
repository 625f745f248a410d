"""Texture Objects: a texture for objects from several views that agree, baked into their UV maps.

1. Cameras: a rig around the selection (``blender.texturing.make_rig``) or the user's own cameras.
   One depth range for all views, so a surface has one grey in all.
Modes (``TextureSettings.mode``): ``synchronized`` (the default) and ``separate`` send every view in
one ``texture_sync`` job (``features.texturing_sync``, steps 2-4 there); ``sequential`` is the chain below.

2. View 0 generates from depth and edges (the units to change): a ``generate`` job.
3. Every later view first renders the texture so far into its own view (``Projector.render_into_view``)
   and sends it as the init image of an ``inpaint`` job whose mask is white where the view sees the
   targets' surface not yet well covered (``blender.texturing.repaint_mask``) or sees no target at all.
   The backend repaints only the new parts, so views agree.
4. Each result is projected (facing weight, occlusion, feathering) and accumulated per texel; the
   textures are written after every view so the mesh updates as it builds.
5. Texels no view saw are filled by UV-space colour propagation (``core.texture_blend.fill_unseen``);
   their weights stay 0, so a later projection replaces the fill instead of blending with it.

A view whose repaint mask is almost empty (< ``MIN_NEW_FRACTION`` of its target pixels) is skipped.
With ``isolate`` every other object is hidden around each render (never across a job). Cancelling
keeps the views finished so far (one undo removes the whole run) and always removes the rig.
Across each ``yield`` the run holds names only; the driver checks they still exist every tick.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import bpy
import numpy as np

from ..blender import settings as blender_settings
from ..blender.extract import extract_passes, scene_depth_range
from ..blender.held import Held
from ..blender.projection import ProjectionError, Projector, check_objects
from ..blender.texturing import check_cameras, isolated, make_rig, remove_rig, view_image, repaint_mask
from ..core import camera_rig
from ..core.job_chain import JobSteps
from ..core.jobspec import REFERENCE_KEY
from ..core.remote_job import JobRequest, PendingFiles
from ..core.texture_blend import fill_unseen
from . import checks, texturing_sync
from .base import FeatureRun, Progress
from .settings import DEPTH_EDGES_UNITS, FIRST_VIEW, TEXTURING, JobSettings, resolve

#: A view adding less than this fraction of its target pixels is skipped.
MIN_NEW_FRACTION = 0.005
#: Texture Objects modes: every view in one job fused in texture space, today's chain of inpaint jobs,
#: or every view on its own (the same one job, no fusion: the baseline).
MODES = ("synchronized", "sequential", "separate")
#: Grey of the init image where the view sees no target (repainted anyway): sRGB mid grey.
BACKGROUND_GREY = 128


@dataclass
class TextureSettings:
    """What a multi-view texturing run does; ``base_params`` are the job fields shared by all views."""

    base_params: dict[str, Any]  # prompt, negative_prompt, seed, steps, guidance, width, height, preview_every
    request_fields: dict[str, Any]  # JobRequest fields besides params/units/images (server, model, ...)
    texture_size: tuple[int, int] = (1024, 1024)
    material: str = "new"
    units: Sequence[Mapping[str, Any]] = DEPTH_EDGES_UNITS
    inpaint_units: Sequence[Mapping[str, Any]] = DEPTH_EDGES_UNITS  # the same guidance: new parts follow the geometry
    coverage_threshold: float = 0.3
    mask_grow_px: int = 8
    fill_unseen: bool = True
    isolate: bool = True
    weight_params: dict[str, float] = field(default_factory=dict)
    # -- reference image: the resolved settings' (features/settings.py), fixed or "first view"
    reference: tuple[dict[str, Any], ...] = ()
    reference_image: Any = None
    mode: str = "synchronized"  # one of MODES
    sync_fraction: float = texturing_sync.SYNC_FRACTION  # synchronized: share of the steps fused in texture space
    view_suffixes: bool = False  # synchronized/separate: "front view", "side view"... appended per view


class TextureResult(dict):  # type: ignore[type-arg]
    """``{object: texture image}``, plus what happened: ``coverage`` (object name → fraction of its island
    texels some view saw), ``views`` (per view: camera, job id or skipped), ``notes``, ``files``."""

    def __init__(self, images: Mapping[bpy.types.Object, bpy.types.Image], coverage: dict[str, float],
                 views: list[dict[str, Any]], notes: list[str], files: list[str]) -> None:
        super().__init__(images)
        self.coverage, self.views, self.notes, self.files = coverage, views, notes, files


def texture_settings(job: JobSettings, *, texture_size: int = 1024, material: str = "new",
                     coverage_threshold: float = 0.3, mask_grow_px: int | None = None, fill_unseen: bool = True,
                     isolate: bool = True, weight_params: Mapping[str, float] | None = None,
                     mode: str = "synchronized", sync_fraction: float = texturing_sync.SYNC_FRACTION,
                     view_suffixes: bool = False) -> TextureSettings:
    """A validated :class:`TextureSettings` from the resolved job settings (square views: ``job.width``)."""
    side = job.width
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: use one of {', '.join(MODES)}")
    if not 0.0 <= sync_fraction <= 1.0:
        raise ValueError(f"sync_fraction {sync_fraction}: use 0..1 (0.8: the first 80% of the steps are fused)")
    if mode != "sequential" and job.first_view_reference:
        raise ValueError(f"reference 'first view' needs the sequential mode: {mode} views are denoised together in"
                         " one job, so no view's result exists before the others to steer them; use"
                         " mode='sequential', or give a Reference Image (it steers every view alike)")
    if mode != "sequential" and side % texturing_sync.LATENT_FACTOR:
        raise ValueError(f"view size {side}: {mode} texturing needs a multiple of {texturing_sync.LATENT_FACTOR}")
    if not 8 <= int(texture_size) <= 16384:
        raise ValueError(f"texture_size {texture_size}: use 8..16384 texels per side (default 1024)")
    if not 0.0 < coverage_threshold:
        raise ValueError(f"coverage_threshold must be above 0, got {coverage_threshold}")
    return TextureSettings(
        base_params=job.params, request_fields=dict(job.fields),
        texture_size=(int(texture_size), int(texture_size)), material=material, units=list(job.units),
        inpaint_units=list(job.units), coverage_threshold=float(coverage_threshold),
        mask_grow_px=int(mask_grow_px if mask_grow_px is not None else max(1, side // 64)),
        fill_unseen=bool(fill_unseen), isolate=bool(isolate),
        # Feathering is in view pixels: 8 px at 512² (core's default), scaled with the view size.
        weight_params={"feather_px": max(2.0, side / 64.0), **dict(weight_params or {})},
        reference=job.reference, reference_image=job.reference_image,
        mode=mode, sync_fraction=float(sync_fraction), view_suffixes=bool(view_suffixes),
    )


def settings_for(scene: bpy.types.Scene, prefs: Any = None, *, size: int | None = None, texture_size: int = 1024,
                 material: str = "new", coverage_threshold: float = 0.3, mask_grow_px: int | None = None,
                 fill_unseen: bool = True, isolate: bool = True, weight_params: Mapping[str, float] | None = None,
                 mode: str = "synchronized", sync_fraction: float = texturing_sync.SYNC_FRACTION,
                 view_suffixes: bool = False, **overrides: Any) -> TextureSettings:
    """Resolve (``features.settings.resolve``, texturing's defaults) and validate a run's settings;
    ``size``: the square view size (default: the scene's width setting)."""
    s = blender_settings.scene_settings(scene)
    side = int(size if size is not None else (s.width if s is not None else 512))
    job = resolve(scene, prefs, defaults=TEXTURING, width=side, height=side, **overrides)
    return texture_settings(job, texture_size=texture_size, material=material, coverage_threshold=coverage_threshold,
                            mask_grow_px=mask_grow_px, fill_unseen=fill_unseen, isolate=isolate,
                            weight_params=weight_params, mode=mode, sync_fraction=sync_fraction,
                            view_suffixes=view_suffixes)


def texture_objects(scene: bpy.types.Scene, objects: Sequence[bpy.types.Object], settings: TextureSettings,
                    views: int | Sequence[bpy.types.Object] = 6,
                    elevations: Sequence[float] = camera_rig.DEFAULT_ELEVATIONS) -> FeatureRun[TextureResult]:
    """The Texture Objects run; everything is validated now, before anything changes."""
    objects = list(objects)
    checks.check_meshes(objects, "Texture Objects")
    objects = check_objects(objects, scene)
    user_cameras = None if isinstance(views, int) else check_cameras(views)
    if isinstance(views, int) and views < 1:
        raise ProjectionError(f"views must be at least 1, got {views}: pass views=1 or more")
    checks.before_render(settings.request_fields, int(settings.base_params["width"]),
                         int(settings.base_params["height"]), settings.units, settings.base_params.get("loras") or ())
    held = Held(scene, [*objects, *(user_cameras or [])], what="Texture Objects")
    progress = Progress(unit="view" if settings.mode == "sequential" else "")
    projector = Projector(objects, settings.texture_size)  # validates; adds UVs where missing (notes)
    user_names = None if user_cameras is None else [c.name for c in user_cameras]
    rig_views = int(views) if isinstance(views, int) else 0
    steps = _steps(held, [o.name for o in objects], settings, user_names, rig_views, elevations, projector, progress)
    return FeatureRun("Texture Objects", steps, held, progress)


def _steps(held: Held, target_names: list[str], settings: TextureSettings, user_cameras: list[str] | None,
           views: int, elevations: Sequence[float], projector: Projector, progress: Progress) -> JobSteps[TextureResult]:
    """The run (see the module doc). Its locals hold names and arrays only: Blender data is looked up
    in the helpers below, anew after every ``yield``."""
    notes = list(projector.notes)
    view_log: list[dict[str, Any]] = []
    files: list[str] = []
    saving = PendingFiles()  # views' PNGs still being written while later views run
    try:
        result = yield from _views(held, target_names, settings, user_cameras, views, elevations, projector,
                                   progress, saving, view_log, files, notes)
        saving.wait()  # the views' PNGs, saved while later views ran: on disk before the run reports done
        return result
    finally:
        saving.discard()  # cancelled or failed: stop saving (nothing half-written); no-op after wait()


def _views(held: Held, target_names: list[str], settings: TextureSettings, user_cameras: list[str] | None,
           views: int, elevations: Sequence[float], projector: Projector, progress: Progress, saving: PendingFiles,
           view_log: list[dict[str, Any]], files: list[str], notes: list[str]) -> JobSteps[TextureResult]:
    """Every view's job, then the fill and the textures: the run less its result files."""
    width, height = int(settings.base_params["width"]), int(settings.base_params["height"])
    first_view: np.ndarray | None = None
    if user_cameras is not None:
        rig, camera_names = "", list(user_cameras)
    else:
        rig, camera_names = make_rig(held.scene, [held.object(n) for n in target_names], views, elevations)
        held.add(held.object(n) for n in camera_names)
    try:
        depth_range = _shared_depth_range(held, target_names, camera_names, settings, projector, (width, height))
        count = len(camera_names) if settings.mode == "sequential" else 0
        if settings.mode != "sequential":
            yield from texturing_sync.run_synchronized(held, target_names, camera_names, settings, depth_range,
                                                       projector, progress, (width, height), _render_view,
                                                       view_log, files, notes, saving)
        for i, camera_name in enumerate(camera_names[:count]):
            progress.set(i, count, "rendering passes")
            t0 = time.perf_counter()
            passes, view = _render_view(held, camera_name, target_names, settings, depth_range, projector,
                                        (width, height))
            t1 = time.perf_counter()
            request = _request(settings, passes.control, f"{held.scene_name}_view{i + 1:02d}")
            first = not view_log or all(v.get("skipped") for v in view_log)
            if not first:
                rgb, weight, mask = projector.render_into_view(view)
                power = float(settings.weight_params.get("power", 2.0))
                facing = np.power(np.clip(passes.raw["normal"][..., 2], 0.0, 1.0), power)  # camera space: +z faces the eye
                repaint = repaint_mask(weight, mask, settings.coverage_threshold, settings.mask_grow_px,
                                       facing.astype(np.float32))
                new = np.count_nonzero(repaint & mask) / max(np.count_nonzero(mask), 1)
                if not mask.any() or new < MIN_NEW_FRACTION:
                    view_log.append({"camera": camera_name, "skipped": True, "new_fraction": float(new)})
                    progress.set(i, count, "already covered, skipped")
                    continue
                init = np.where(mask[..., None], np.round(rgb * 255.0), BACKGROUND_GREY).astype(np.uint8)
                request = _inpaint_request(settings, passes.control, init, repaint, request.name)
            request = _with_first_view(request, settings, first_view)
            progress.set(i, count, "generating")
            t2 = time.perf_counter()
            outcome = saving.add((yield request))
            t3 = time.perf_counter()
            pixels = outcome.image(0)  # taken at `ready`; its PNG may still be being written
            image = view_image(pixels, (width, height))
            if first_view is None:
                first_view = pixels  # the look later views hold (reference="first view")
            files.extend(outcome.files)
            notes.extend(n for n in outcome.notes if n not in notes)
            progress.set(i, count, "projecting")
            seen = projector.project(view, image, None, **settings.weight_params)
            t4 = time.perf_counter()
            projector.write(settings.material)  # the mesh shows the texture as it builds
            t5 = time.perf_counter()
            view_log.append({"camera": camera_name, "job_id": outcome.job_id, "model": outcome.model,
                             "first": first, "seen": seen, "timings": {
                                 "passes": t1 - t0, "render_back": t2 - t1, "job": t3 - t2,
                                 "project": t4 - t3, "write": t5 - t4}})
    finally:
        if rig:
            held.discard(camera_names)
            remove_rig(rig, camera_names)
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


def _shared_depth_range(held: Held, target_names: list[str], camera_names: list[str], settings: TextureSettings,
                        projector: Projector, size: tuple[int, int]) -> Any:
    """One depth range for every view, and the occlusion geometry (computed once), both with the
    targets alone when isolating."""
    scene = held.scene
    with isolated(scene, [held.object(n) for n in target_names], settings.isolate):
        depth_range = scene_depth_range(scene, [held.object(n) for n in camera_names], size)
        projector.geometry  # noqa: B018 - evaluated here, while the rest is hidden
    return depth_range


def _render_view(held: Held, camera_name: str, target_names: list[str], settings: TextureSettings, depth_range: Any,
                 projector: Projector, size: tuple[int, int]) -> tuple[Any, Any]:
    """The view's passes (others hidden for this render only) and its camera view."""
    scene, camera = held.scene, held.object(camera_name)
    with isolated(scene, [held.object(n) for n in target_names], settings.isolate):
        passes = extract_passes(scene, camera, size, depth_range=depth_range,
                                classes=blender_settings.object_classes(scene) or None)
    return passes, projector.view(camera, size)


def _request(settings: TextureSettings, control: Mapping[str, np.ndarray], name: str) -> JobRequest:
    return JobRequest(params=dict(settings.base_params), units=[dict(u) for u in settings.units],
                      images=_reference_images(settings, control), name=name, **settings.request_fields)


# -- reference images --------------------------------------------------------------------------------


def _first_view_reference(settings: TextureSettings) -> bool:
    return bool(settings.reference) and isinstance(settings.reference_image, str) and settings.reference_image == FIRST_VIEW


def _reference_images(settings: TextureSettings, images: Mapping[str, Any]) -> dict[str, Any]:
    """``images`` plus a fixed reference image (its entries are already in ``base_params``)."""
    out = dict(images)
    if settings.reference and not _first_view_reference(settings):
        out[REFERENCE_KEY] = settings.reference_image
    return out


def _with_first_view(request: JobRequest, settings: TextureSettings, first: np.ndarray | None) -> JobRequest:
    """A later view's request with the first view's result as its reference (reference="first view")."""
    if not _first_view_reference(settings) or first is None:
        return request
    params = {**request.params, "reference": [dict(r) for r in settings.reference]}
    return dataclasses.replace(request, params=params, images={**request.images, REFERENCE_KEY: first})


def _inpaint_request(settings: TextureSettings, control: Mapping[str, np.ndarray], init: np.ndarray,
                     repaint: np.ndarray, name: str) -> JobRequest:
    params = dict(settings.base_params)
    params["preset"] = {"stages": [{"type": "inpaint", "image": "init", "mask": "mask", "strength": 1.0}]}
    mask_rgb = np.repeat((repaint.astype(np.uint8) * 255)[..., None], 3, axis=2)
    images = _reference_images(settings, {**control, "init": init, "mask": mask_rgb})
    return JobRequest(params=params, units=[dict(u) for u in settings.inpaint_units], images=images,
                      name=name, **settings.request_fields)
