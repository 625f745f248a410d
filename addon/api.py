"""Scenecast's scripting face: what the operators do, callable from scripts, ``blender -b`` and tests.

    import bl_ext.user_default.scenecast.api as scenecast
    passes = scenecast.extract_passes(bpy.context.scene, resolution=(512, 512))
    images = scenecast.generate(bpy.context.scene, prompt="a rainy street at dusk", steps=20)

Every call here blocks until done and must run on Blender's main thread: it resolves its settings
(``features.settings.resolve``) and runs the feature's generator (``features/``) blocking; the UI's
job operator runs the same generators modally. Arguments left ``None`` take the scene's Scenecast
settings (the sidebar panel), and ``server`` / ``model`` override the add-on preferences.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import bpy

from .blender import projection as _projection
from .blender import settings as _settings
from .blender import texture_target as _texture_target
from .blender.extract import Passes
from .blender.frame_run import FrameOptions, FramesResult
from .core.conventions import DepthRange
from .core.remote_job import JobFailed, JobOutcome, JobRequest, run_job
from .features import generate as _generate
from .features import presets as _presets
from .features import stylize as _stylize
from .features import texturing as _texturing
from .features.base import run_blocking
from .features.settings import CONTROL_TYPES, DEPTH_UNIT, FIRST_VIEW, GENERATE, STYLIZE, resolve
from .features.settings import request_fields as _request_fields

__all__ = [
    "JobFailed",
    "Passes",
    "extract_passes",
    "generate",
    "load_results",
    "output_dir",
    "prepare",
    "project",
    "restore_materials",
    "save_preset",
    "texture_objects",
    "run_job",
    "stylize_frame",
    "stylize_frames",
]

#: The unit used when neither the call nor the scene names any: depth at full weight.
DEFAULT_UNITS: tuple[dict[str, Any], ...] = (DEPTH_UNIT,)
__all__ += ["CONTROL_TYPES", "DEFAULT_UNITS", "request_fields"]


def _notes(notes: Iterable[str]) -> None:
    for note in notes:
        print(f"Scenecast: {note}")


def extract_passes(
    scene: bpy.types.Scene,
    camera: bpy.types.Object | None = None,
    resolution: tuple[int, int] | None = None,
    **kwargs: Any,
) -> Passes:
    """The scene's passes from ``camera`` (default: the scene camera) at ``resolution`` (W, H).

    Returns ``Passes``: ``.control`` ("depth", "normal", "edges", "segmentation" → H×W×3 uint8, row 0
    top; depth and edges are read-only views of one grey plane: ``.copy()`` one to edit it) and ``.raw`` ("depth" H×W float32 scene units, inf for background; "normal" H×W×3 camera
    space; "object_id" H×W int32). Segmentation classes come from each object's Scenecast class unless
    ``classes=`` is given; the depth range from the scene's Set Depth Range unless ``depth_range=`` is.
    Keyword arguments go on to ``blender.extract.extract_passes`` (``frame``, ``edges``, ...).
    """
    return _generate.extract_passes(scene, camera, resolution, **kwargs)


def output_dir(context: bpy.types.Context | None = None) -> str:
    """Where results are saved: the preference, else ``//scenecast/`` by the .blend, else a temp folder."""
    return _settings.output_dir(_settings.preferences(context))


def request_fields(
    scene: bpy.types.Scene, model: str | None = None, server: str | None = None, timeout: float | None = None,
    out_dir: str | None = None,
) -> dict[str, Any]:
    """The ``JobRequest`` fields that say where and how a job runs (server, model, backend start-up,
    output folder): the call's values, else the scene's model and the add-on preferences. Shared by
    every feature that sends jobs, so they all honour the same settings."""
    return _request_fields(scene, model=model, server=server, timeout=timeout, output_dir=out_dir)


def _single_reference(reference: Any) -> Any:
    """Generate runs one job: "first view" has nothing to follow there."""
    if isinstance(reference, str) and reference.strip().lower() == FIRST_VIEW:
        raise ValueError('reference="first view" is for texture_objects and stylize_frames; give generate an image')
    return reference


def prepare(
    scene: bpy.types.Scene,
    prompt: str | None = None,
    preset: str | None = None,
    model: str | None = None,
    server: str | None = None,
    negative_prompt: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    width: int | None = None,
    height: int | None = None,
    camera: bpy.types.Object | None = None,
    units: Iterable[Mapping[str, Any]] | None = None,
    timeout: float | None = None,
    guidance: float | None = None,
    preview_every: int | None = None,
    reference: Any = None,
    reference_weight: float | None = None,
    *,
    scheduler: str | None = None,
    loras: Iterable[Mapping[str, Any]] | None = None,
    vae: str | None = None,  # -- VAE (issue 13)
) -> JobRequest:
    """Main-thread half of a generation: extract passes, encode them, gather settings into a request."""
    settings = resolve(scene, defaults=GENERATE, prompt=prompt, preset=preset, model=model, server=server,
                       negative_prompt=negative_prompt, seed=seed, steps=steps, width=width, height=height,
                       units=units, timeout=timeout, guidance=guidance, preview_every=preview_every,
                       reference=_single_reference(reference), reference_weight=reference_weight,
                       scheduler=scheduler, loras=loras, vae=vae)
    return _generate.prepare(scene, settings, camera)


def load_results(outcome: JobOutcome) -> list[bpy.types.Image]:
    """Main-thread half: the result files as Blender images, tagged with the job that made them."""
    return _generate.load_results(outcome)


def generate(
    scene: bpy.types.Scene,
    prompt: str | None = None,
    preset: str | None = None,
    model: str | None = None,
    server: str | None = None,
    negative_prompt: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    width: int | None = None,
    height: int | None = None,
    camera: bpy.types.Object | None = None,
    units: Iterable[Mapping[str, Any]] | None = None,
    on_event: Callable[[Any], None] | None = None,
    timeout: float | None = None,
    cancel: threading.Event | None = None,
    guidance: float | None = None,
    preview_every: int | None = None,
    reference: Any = None,
    reference_weight: float | None = None,
    *,
    scheduler: str | None = None,
    loras: Iterable[Mapping[str, Any]] | None = None,
    vae: str | None = None,  # -- VAE (issue 13)
) -> list[bpy.types.Image]:
    """Extract passes, run a job on the backend and return the results as saved Blender images.

    ``units``: ControlNet units as dicts ``{"type": "depth"|"normal"|"edges"|"segmentation", "weight",
    "start", "end"}``; default: the scene's units, else one depth unit. ``on_event`` gets the job's
    events (``.type``, ``.data``, ``.image`` for previews), called from this thread, up to the one that
    hands the results over (``ready``; ``done`` from a protocol-1.0 backend). ``cancel``: set it
    (from another thread) to cancel the job on the server. Raises ``ValueError`` for bad arguments,
    ``core.client.ScenecastError`` (``.message``, ``.fix``) when the backend cannot be reached and
    :class:`JobFailed` when the job fails or is cancelled; the scene is left as it was in every case.
    Notes the user should see (offline model, backend started) are printed. ``scheduler``: one of
    ``core.jobspec.SCHEDULERS`` (default: the scene's, else the preset's or the backend's); ``loras``:
    ``[{"name": id or file name, "weight": 1.0}]`` (default: the scene's LoRAs list); ``vae``: a VAE id
    (hub id, folder, .safetensors or models-folder name; default: the scene's, else the model's own). Before any pass is
    rendered, ``features.checks`` refuses what the backend would (size, model not installed offline,
    backend not reachable), with the fix. ``reference``: a style/reference image (file path, Blender
    image or uint8 array; IP-Adapter on SD1.5/SDXL, Redux on FLUX.1) at ``reference_weight`` (0..2);
    default: the scene's Reference Image.
    """
    settings = resolve(scene, defaults=GENERATE, prompt=prompt, preset=preset, model=model, server=server,
                       negative_prompt=negative_prompt, seed=seed, steps=steps, width=width, height=height,
                       units=units, timeout=timeout, guidance=guidance, preview_every=preview_every,
                       reference=_single_reference(reference), reference_weight=reference_weight,
                       scheduler=scheduler, loras=loras, vae=vae)
    run = _generate.generate(scene, settings, camera)
    result = run_blocking(run, on_event=on_event, cancel=cancel)
    _notes(run.notes)
    return result.images


def project(
    objects: Iterable[bpy.types.Object],
    camera: bpy.types.Object | None,
    image: Any,
    *,
    size: int | tuple[int, int] = 1024,
    material: str = "new",
    depth: Any = None,
    pad: int = 16,
    **weight_params: float,
) -> dict[bpy.types.Object, bpy.types.Image]:
    """Project ``image`` from ``camera`` (default: the scene camera) onto the mesh ``objects``' UV textures.

    ``image``: a Blender image, or an (H, W, 3|4) array of sRGB values (uint8, or float 0..1), row 0 at
    the top; it is taken as what ``camera`` renders at the image's size. Each object gets an 8-bit sRGB
    texture "<object> Scenecast" (``size`` texels per side) and a float weight image
    "<object> Scenecast.weight", both packed; calling again from another camera blends the views by their
    weights (facing angle^``power``, feathered ``feather_px`` px from silhouettes, 0 beyond ``cutoff_deg``
    and where the scene occludes — depth from the scene's evaluated meshes, or ``depth=`` (H, W) planar
    depth of a render). ``material``: "new" (a new material in every slot) or "node" (an Image Texture
    node into the Principled BSDF's Base Color of the object's material); ``restore_materials`` undoes
    either. Objects without UVs get Smart UV Project UVs. Returns ``{object: texture image}`` with
    ``.notes`` (also printed), ``.coverage`` (name → fraction of island texels seen so far) and
    ``.uvs_added``. Raises ``ValueError`` subclasses naming the fix; on error nothing has changed.
    """
    return _projection.project(objects, camera, image, size=size, material=material, depth=depth, pad=pad,
                               **weight_params)


def restore_materials(objects: Iterable[bpy.types.Object]) -> list[str]:
    """Give ``objects`` back the materials ``project`` replaced; returns the names of those that changed.

    Their Scenecast textures and weights stay (projecting again continues blending onto them).
    """
    return _texture_target.restore_materials(objects)


def texture_objects(
    objects: Iterable[bpy.types.Object],
    prompt: str | None = None,
    views: int | Sequence[bpy.types.Object] = 6,
    model: str | None = None,
    server: str | None = None,
    *,
    scene: bpy.types.Scene | None = None,
    elevations: Sequence[float] = (15.0, 50.0),
    size: int | None = None,
    texture_size: int = 1024,
    material: str = "new",
    negative_prompt: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    units: Iterable[Mapping[str, Any]] | None = None,
    coverage_threshold: float = 0.3,
    mask_grow_px: int | None = None,
    fill_unseen: bool = True,
    isolate: bool = True,
    mode: str | None = None,
    view_suffixes: bool = False,
    on_event: Callable[[Any], None] | None = None,
    on_view: Callable[[int, int, str], None] | None = None,
    cancel: threading.Event | None = None,
    timeout: float | None = None,
    reference: Any = None,
    reference_weight: float | None = None,
) -> Any:
    """Generate one texture per object from several views that agree, baked into each object's UV map.

    ``mode`` (default: the scene's Texture Mode, ``"synchronized"`` unless changed): ``"synchronized"`` denoises every view together in one job, fused through the
    shared texture (docs/projection.md); ``"separate"`` is the same job without the fusion (each view on
    its own, baked together); ``"sequential"`` is the chain described next. ``view_suffixes`` appends
    "front view", "side view"... to each view's prompt (synchronized and separate).

    ``views``: a number of rig cameras around the objects (cycling through ``elevations``, degrees;
    view 0 from the front), or a list of the user's camera objects. View 0 generates from depth +
    edges (``units`` to change); each later view renders the texture so far into itself and inpaints
    only what is not yet well covered (accumulated weight < ``coverage_threshold``), so views agree.
    Results accumulate by facing weight per texel (see :func:`project`); texels no view saw are filled
    by UV-space colour propagation (``fill_unseen``). ``isolate`` (default) hides every other object
    from the renders while the run lasts, so the views show the targets alone. ``size``: the square view size in pixels
    (default: the scene's width setting); ``texture_size``: texels per side. ``on_view(i, n, text)``
    reports progress per view, ``on_event`` each job's events; ``cancel`` (set from another thread)
    stops during or between views, keeping the views done. Returns ``{object: texture image}`` with
    ``.coverage`` (name → fraction of island texels some view saw), ``.views`` (per view: camera, job
    id, or skipped), ``.notes`` (also printed) and ``.files`` (the generated view images).
    Raises ``ValueError`` naming the fix for bad arguments and ``JobFailed`` when a job fails or is cancelled.
    ``reference``: a style image (path, Blender image, array) for every view, or "first view": the first
    view's result becomes the reference of the later views, so they hold one look (``reference_weight``).
    """
    scene = scene or bpy.context.scene
    if scene is None:
        raise ValueError("no active scene: pass scene=")
    settings = _texturing.settings_for(
        scene, prompt=prompt, model=model, server=server, negative_prompt=negative_prompt, seed=seed, steps=steps,
        guidance=guidance, size=size, texture_size=texture_size, material=material, units=units,
        coverage_threshold=coverage_threshold, mask_grow_px=mask_grow_px, fill_unseen=fill_unseen,
        isolate=isolate, timeout=timeout, reference=reference, reference_weight=reference_weight,
        mode=mode or _texture_mode(scene), view_suffixes=view_suffixes,
    )
    run = _texturing.texture_objects(scene, list(objects), settings, views, elevations)
    if on_view is not None:
        run.progress.listeners.append(lambda p: on_view(p.index, p.count, p.text))
    result = run_blocking(run, on_event=on_event, cancel=cancel)
    _notes(result.notes)
    return result


def stylize_frame(
    scene: bpy.types.Scene,
    prompt: str | None = None,
    preset: str | None = None,
    camera: bpy.types.Object | None = None,
    model: str | None = None,
    server: str | None = None,
    *,
    init: str | None = None,
    init_strength: float = 0.6,
    refine: float = 0.0,
    camera_background: bool = False,
    compositor: bool = False,
    on_event: Callable[[Any], None] | None = None,
    cancel: threading.Event | None = None,
    **settings: Any,
) -> bpy.types.Image:
    """Stylize the view of ``camera`` (default: the scene camera): passes → pipeline → a saved image.

    The pipeline is ``preset``'s, else ControlNets from ``units`` (default depth + edges). ``init``:
    "clay" or "color" starts from that render as img2img at ``init_strength``; ``refine`` > 0 adds an
    img2img stage at that strength. The image is shown in open Image Editors; ``camera_background``
    also shows it behind the camera, ``compositor`` puts it in an Image node "Scenecast Image".
    Other keywords as :func:`generate` (``negative_prompt``, ``seed``, ``steps``, ``guidance``,
    ``width``, ``height``, ``units``, ``timeout``). Blocks; main thread only.
    """
    job = resolve(scene, defaults=STYLIZE, prompt=prompt, preset=preset, model=model, server=server, **settings)
    look = _stylize.FrameLook(init=init, init_strength=init_strength, refine=refine)
    run = _stylize.stylize_frame(scene, job, camera, look=look, camera_background=camera_background,
                                 compositor=compositor)
    image: bpy.types.Image = run_blocking(run, on_event=on_event, cancel=cancel)
    _notes(run.notes)
    return image


def stylize_frames(
    scene: bpy.types.Scene,
    frame_start: int,
    frame_end: int,
    output_dir: str,
    prompt: str | None = None,
    model: str | None = None,
    server: str | None = None,
    *,
    consistency: bool = True,
    hole_strength: float = 1.0,
    refresh_strength: float = 0.3,
    dilate_px: int = 2,
    depth_tolerance: float = 0.05,
    restart: bool = False,
    depth_range: tuple[float, float] | DepthRange | None = None,
    shot_range: tuple[int, int] | None = None,
    camera: bpy.types.Object | None = None,
    strip: bool = False,
    video: str | bool | None = None,
    fps: float | None = None,
    on_event: Callable[[Any], None] | None = None,
    cancel: threading.Event | None = None,
    **settings: Any,
) -> Any:
    """Stylize frames ``frame_start``..``frame_end`` into ``output_dir/frame_####.png`` + a JSON record.

    One depth range (``depth_range``, else the scene's Set Depth Range, else the bounds over
    ``shot_range`` — default the scene's frame range) and one seed for all frames. With
    ``consistency`` each frame after the first warps the previous output along Blender's Vector pass,
    inpaints the disoccluded pixels at ``hole_strength`` (mask grown by ``dilate_px``; depth disagreeing
    by more than ``depth_tolerance``, relative, counts) and refreshes the whole frame at
    ``refresh_strength`` (0 skips). Resumes at the first missing frame; ``restart=True`` redoes all.
    ``strip``: an image strip in the sequencer; ``video``: True or a path, an MP4 by Blender's FFmpeg.
    Other keywords as :func:`generate`; ``reference="first view"`` makes the first frame's result the
    reference image of the later frames (one look throughout). Returns ``blender.frame_run.FramesResult`` (``files``,
    ``made``, ``skipped``, ``record_path``, ``record``). The scene's frame and render settings are
    restored, also on failure or cancel; raises :class:`JobFailed` (status "cancelled" on ``cancel``).
    """
    options = FrameOptions(consistency=consistency, hole_strength=hole_strength, refresh_strength=refresh_strength,
                           dilate_px=dilate_px, depth_tolerance=depth_tolerance, restart=restart)
    job = resolve(scene, defaults=STYLIZE, prompt=prompt, model=model, server=server, output_dir=None, **settings)
    run = _stylize.stylize_frames(scene, job, frame_start, frame_end, output_dir, snapshot=True, strip=strip,
                                  video=video, fps=fps, camera=camera, depth_range=depth_range, shot_range=shot_range,
                                  options=options)
    result: FramesResult = run_blocking(run, on_event=on_event, cancel=cancel,
                                        on_status=lambda text: print(f"Scenecast: {text}"))
    return result


def save_preset(scene: bpy.types.Scene, name: str, *, description: str = "", overwrite: bool = False) -> str:
    """Save the scene's Scenecast settings (negative prompt, steps, guidance, sampler, LoRAs, ControlNet
    units) as the preset ``name`` in the user's presets folder (not inside the installed extension);
    it is listed with the shipped presets from then on. Returns the file's path."""
    return str(_presets.save_preset(scene, name, description=description, overwrite=overwrite))


def _texture_mode(scene: bpy.types.Scene) -> str:
    """The scene's Texture Mode (Sidebar › Scenecast › Texture), ``"synchronized"`` without the add-on's UI."""
    settings = getattr(scene, "scenecast", None)
    return str(getattr(settings, "texture_mode", "synchronized") or "synchronized")
