"""Texture Objects, ``synchronized`` and ``separate`` modes: every view in ONE ``texture_sync`` job.

The sequential mode (``features.texturing``) runs a job per view, each inpainting what the views before
it left uncovered. Here (docs/projection.md, "Synchronized multi-view texturing"):

1. Every view's passes are rendered as in the sequential mode (one depth range for all).
2. The targets' texels are packed into one list (``core.sync_views.PackedTexels``) twice: a coarse
   texture for the latent grid (each latent pixel covers 8x8 image pixels) and the final texture (the
   projector's own texel samples, so the result maps straight back). Each view is rasterised at the
   latent size and at the image size (``core.projection``, occlusion by every visible surface) and
   turned into a correspondence (``view_correspondence``), encoded as the job's correspondence part.
3. One job: a ``texture_sync`` stage with each view's ControlNet passes (and, optionally, a "front
   view" / "side view" prompt suffix per view). ``synchronized`` fuses the first ``sync_fraction`` of
   the steps in texture space; ``separate`` sends ``sync_fraction`` 0, so the views are denoised on
   their own and only the final bake joins them (the baseline the issue compares against).
4. The backend returns the N view images, then the baked texture and its weight as strips of packed
   texels; they are unpacked into each target (``strip_values`` / ``unpack``) where some view saw the
   texel; ``features.texturing`` then fills unseen texels and writes the textures as in every mode.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..blender.held import Held
from ..blender.projection import ProjectionError, Projector
from ..blender.texturing import view_image
from ..core.jobspec import REFERENCE_KEY
from ..core.projection import rasterize_view
from ..core.remote_job import JobOutcome, JobRequest, PendingFiles
from ..core.sync_views import Level, PackedTexels, at_resolution, encode, strip_values, unpack, view_correspondence, view_suffix
from ..core.uv_raster import rasterize_uv
from .base import Progress

#: The texture_sync stage's defaults the add-on sends (backend/spec.py TextureSyncStage).
SYNC_FRACTION = 0.8
LATENT_FACTOR = 8  # the latent grid of every family the backend serves is the image / 8
CORRESPONDENCE_KEY = "correspondence"
#: Packed texels per row of the texture strips the backend returns.
STRIP_WIDTH = 1024


def correspondence_part(projector: Projector, views: Sequence[Any], size: tuple[int, int],
                        texture_size: tuple[int, int]) -> tuple[bytes, PackedTexels]:
    """The encoded correspondence for ``views`` (camera views at ``size``) and the image level's packing
    (the projector's own texel samples: packed texel k of target t is ``t.samples.index[k - offset]``)."""
    targets = projector.targets
    geometry = projector.geometry
    own = [geometry.ranges.get(t.name) for t in targets]
    keep = np.ones(len(geometry.triangles), dtype=bool)
    for r in own:
        if r is not None:
            keep[r[0]:r[1]] = False
    occluders = geometry.triangles[keep]  # every other visible surface: it hides texels, it has none
    tri_world = np.concatenate([*(t.triangles.positions for t in targets), occluders]).astype(np.float32)
    tri_normals = np.concatenate([*(t.triangles.normals for t in targets),
                                  np.zeros_like(occluders)]).astype(np.float32)
    w, h = size
    # latent texture: as many texels per side as the latent grid has pixels (docs/projection.md: about one
    # texel per latent pixel where an object fills a view; finer, views rarely share texels)
    side = max(8, min(w, h) // LATENT_FACTOR)
    latent_tex = (min(side, texture_size[0]), min(side, texture_size[1]))
    image_packed = PackedTexels([(t.triangles.uv, t.samples) for t in targets])
    latent_packed = PackedTexels([(t.triangles.uv, rasterize_uv(t.triangles.uv, latent_tex)) for t in targets])
    levels = []
    for name, res, packed in (("latent", (w // LATENT_FACTOR, h // LATENT_FACTOR), latent_packed),
                              ("image", (w, h), image_packed)):
        index, weight = [], []
        for view in views:
            v = at_resolution(view, res)
            i, wt = view_correspondence(v, rasterize_view(v, tri_world), packed, tri_world, tri_normals)
            index.append(i)
            weight.append(wt)
        levels.append(Level(name, np.stack(index), np.stack(weight), packed.count))
    return encode(levels, power=1.0, compress=True), image_packed


def sync_request(settings: Any, controls: Sequence[dict[str, np.ndarray]], part: bytes, suffixes: Sequence[str],
                 name: str, request_fields: dict[str, Any]) -> JobRequest:
    """One ``texture_sync`` job: per view its units (image keys ``v<i>_<key>``) and suffix; a reference
    image (``settings.reference``) goes to the stage as in the sequential mode and steers every view."""
    views: list[dict[str, Any]] = []
    images: dict[str, Any] = {}
    for i, (control, suffix) in enumerate(zip(controls, suffixes)):
        units = [{**dict(u), "image": f"v{i}_{u.get('image') or u['type']}"} for u in settings.units]
        images.update({f"v{i}_{key}": image for key, image in control.items()})  # those no unit names stay here
        views.append({"controlnets": units, "prompt_suffix": suffix})
    if settings.reference:  # its entries are in base_params; the same image steers every view
        if isinstance(settings.reference_image, str):  # "first view": texture_settings refuses it here
            raise ValueError(f"reference {settings.reference_image!r} needs the sequential mode")
        images[REFERENCE_KEY] = settings.reference_image
    fraction = 0.0 if settings.mode == "separate" else float(settings.sync_fraction)
    params = dict(settings.base_params)
    params["preset"] = {"stages": [{"type": "texture_sync", "views": views, "correspondence": CORRESPONDENCE_KEY,
                                    "sync_fraction": fraction, "texture_width": STRIP_WIDTH}]}
    images[CORRESPONDENCE_KEY] = part
    return JobRequest(params=params, units=[], images=images, name=name, **request_fields)


def strip_image(pixels: np.ndarray) -> np.ndarray:
    """(rows, STRIP_WIDTH, 3) float 0..1 of a texture/weight strip result (``JobOutcome.image``)."""
    return pixels[..., :3].astype(np.float32) / 255.0


def apply_bake(projector: Projector, packed: PackedTexels, texture: np.ndarray, weight: np.ndarray,
               views: Sequence[Any], images: Sequence[np.ndarray], weight_params: dict[str, float]) -> dict[str, float]:
    """Write the result into every target: the backend's bake where it has weight (texels some view pixel
    landed on), else the Projector's projection of the returned views (it samples every texel a view sees:
    the bake misses texels between pixel centres when the texture is finer than the views), else what the
    target held (its existing texture or blank, weight 0, for ``fill_unseen``). Returns name → share of
    its island texels the backend's bake covered."""
    held = [(t.color, t.weight) for t in projector.targets]
    for t in projector.targets:
        t.color, t.weight = np.zeros_like(t.color), np.zeros_like(t.weight)
    for view, image in zip(views, images):
        projector.project(view, image, None, **weight_params)
    colors = strip_values(texture, packed.count)
    weights = strip_values(weight, packed.count)[:, :1]
    baked = {}
    for k, (t, (old_color, old_weight)) in enumerate(zip(projector.targets, held)):
        color = unpack(packed, colors, k, t.samples)
        w = unpack(packed, weights, k, t.samples)[..., 0]
        hit, projected = w > 0, t.weight > 0
        t.color = np.where(hit[..., None], color, np.where(projected[..., None], t.color, old_color)).astype(old_color.dtype)
        t.weight = np.where(hit, np.maximum(w, t.weight), np.where(projected, t.weight, old_weight)).astype(old_weight.dtype)
        count = len(t.samples.index)
        baked[t.name] = float(np.count_nonzero(hit.reshape(-1)[t.samples.index])) / count if count else 0.0
    return baked


def run_synchronized(held: Held, target_names: list[str], camera_names: list[str], settings: Any,
                     depth_range: Any, projector: Projector, progress: Progress, size: tuple[int, int],
                     render_view: Any, view_log: list[dict[str, Any]], files: list[str], notes: list[str],
                     saving: PendingFiles) -> Any:
    """The job's steps (a generator yielding one ``JobRequest``); fills ``view_log``, ``files``, ``notes``
    and adds the job's outcome to ``saving`` (its PNGs are written while the bake runs)."""
    count = len(camera_names)
    controls, views, suffixes = [], [], []
    t0 = time.perf_counter()
    for i, camera_name in enumerate(camera_names):
        progress.set(i, count, "rendering passes", unit="view")
        passes, view = render_view(held, camera_name, target_names, settings, depth_range, projector, size)
        controls.append(dict(passes.control))
        views.append(view)
    if settings.view_suffixes:
        centre = np.mean(np.concatenate([t.points for t in projector.targets if len(t.points)]), axis=0)
        suffixes = [view_suffix(v, centre) for v in views]
    else:
        suffixes = [""] * count
    progress.set(0, 1, f"matching {count} views to the texture", unit="")
    part, packed = correspondence_part(projector, views, size, projector.size)  # type: ignore[arg-type]
    if packed.count == 0:
        raise ProjectionError("the targets have no texels to paint: check their UV maps")
    t1 = time.perf_counter()
    request = sync_request(settings, controls, part, suffixes, f"{held.scene_name}_sync", settings.request_fields)
    progress.set(0, 1, f"generating {count} views together" if settings.mode == "synchronized"
                 else f"generating {count} views separately")
    outcome: JobOutcome = saving.add((yield request))
    t2 = time.perf_counter()
    if len(outcome.files) != count + 2:
        raise ProjectionError(f"the backend returned {len(outcome.files)} results for {count} views; expected"
                              f" {count + 2} (views, texture, weight): update the backend")
    images = [view_image(outcome.image(i), size) for i in range(count)]  # a wrong-size model says so here
    files.extend(outcome.files)
    notes.extend(n for n in outcome.notes if n not in notes)
    progress.set(0, 1, "baking")
    baked = apply_bake(projector, packed, strip_image(outcome.image(count)), strip_image(outcome.image(count + 1)),
                       views, images, settings.weight_params)
    t3 = time.perf_counter()
    for i, camera_name in enumerate(camera_names):
        view_log.append({"camera": camera_name, "job_id": outcome.job_id, "model": outcome.model, "first": i == 0,
                         "mode": settings.mode, "prompt_suffix": suffixes[i], "baked": baked,
                         "timings": {"passes_and_correspondence": t1 - t0, "job": t2 - t1, "bake": t3 - t2}
                         if i == 0 else {}})  # one job: its timings once, so sums over views stay right
    return None
