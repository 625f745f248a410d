"""Stylize one frame or a frame range: what ``api.stylize_frame`` / ``api.stylize_frames`` and the
frame operators run. Settings resolve like ``api.generate``'s (call, then the scene's Scenecast
settings, then defaults; ``server``/``model`` override the preferences).

One frame: passes → a pipeline (the preset's, or ControlNets from ``units``; default depth + edges),
optionally starting as img2img from the clay or colour render (``init``) and/or ending with an
img2img ``refine`` stage → a saved image, shown in the Image Editor, optionally the camera's
background and/or a compositor Image node.

Frame ranges: ``blender.frame_run`` (resumable, consistent across frames; see there), then
optionally an image strip in the sequencer and a video from Blender's FFmpeg.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import bpy

from . import api
from .blender import frame_outputs
from .blender.extract import extract_passes
from .blender.frame_run import FrameOptions, FrameRun, FramesResult
from .core import frame_sequence as seq
from .core.conventions import DepthRange
from .core.jobspec import build_job_spec
from .core.remote_job import JobOutcome, JobRequest, run_job
from .ui.properties import NO_PRESET, object_classes

#: ControlNets when neither the call, the scene nor a preset names any: layout from depth, crisp
#: silhouettes from edges (loosened for the last fifth of the steps).
FRAME_UNITS: tuple[dict[str, Any], ...] = (
    {"type": "depth", "weight": 1.0, "start": 0.0, "end": 1.0},
    {"type": "edges", "weight": 0.6, "start": 0.0, "end": 0.8},
)
INIT_SOURCES = ("clay", "color")


def request_template(
    scene: bpy.types.Scene,
    *,
    prompt: str | None = None,
    preset: str | Mapping[str, Any] | None = None,
    model: str | None = None,
    server: str | None = None,
    negative_prompt: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    width: int | None = None,
    height: int | None = None,
    units: Iterable[Mapping[str, Any]] | None = None,
    timeout: float | None = None,
    out_dir: str | None = None,
) -> JobRequest:
    """A ``JobRequest`` without images: the scene's and the preferences' settings, like ``api.prepare``."""
    s = getattr(scene, "scenecast", None)
    prompt = api._pick(prompt, s, "prompt", "")
    if not prompt:
        raise ValueError("the prompt is empty: type what the image should show in Scenecast › Prompt")
    width, height = int(api._pick(width, s, "width", 512)), int(api._pick(height, s, "height", 512))
    if width % 8 or height % 8:
        raise ValueError(f"size {width}×{height} is not a multiple of 8: set width and height to multiples of 8")
    if preset is None and s is not None and s.preset != NO_PRESET:
        preset = s.preset
    unit_list = api._units(scene, units, "preset" if preset else None)
    if units is None and not preset and (s is None or not len(s.units)):
        unit_list = [dict(u) for u in FRAME_UNITS]
    for unit in unit_list:
        if unit.get("type") not in api.CONTROL_TYPES:
            raise ValueError(f"unknown ControlNet unit type {unit.get('type')!r}: use one of {', '.join(api.CONTROL_TYPES)}")
    scene_values = None if preset else s
    params = {
        "prompt": prompt, "seed": int(api._pick(seed, s, "seed", 0)), "width": width, "height": height,
        "negative_prompt": api._pick(negative_prompt, scene_values, "negative_prompt", None),
        "steps": api._pick(steps, scene_values, "steps", None),
        "guidance": api._pick(guidance, scene_values, "guidance", None),
        "preset": preset, "preview_every": 0,
    }  # fmt: skip
    return JobRequest(params=params, units=unit_list, images={}, name=scene.name,
                      **api.request_fields(scene, model, server, timeout, out_dir))


def _scene_depth_range(scene: bpy.types.Scene) -> DepthRange | None:
    s = getattr(scene, "scenecast", None)
    return DepthRange(s.depth_near, s.depth_far) if s is not None and s.depth_override else None


# ------------------------------------------------------------------------------------------ one frame


def prepare_frame(
    scene: bpy.types.Scene,
    template: JobRequest,
    camera: bpy.types.Object | None = None,
    *,
    init: str | None = None,
    init_strength: float = 0.6,
    refine: float = 0.0,
) -> JobRequest:
    """Main-thread half of one stylized frame: passes (and the clay/colour render for ``init``) and
    the pipeline, as a request ready for ``run_job``."""
    if init is not None and init not in INIT_SOURCES:
        raise ValueError(f"init must be None or one of {', '.join(INIT_SOURCES)}, got {init!r}")
    for name, value in (("init_strength", init_strength), ("refine", refine)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} {value} is outside 0..1")
    if init and init_strength <= 0:
        raise ValueError("init_strength must be above 0 with init (1 repaints fully)")
    params = dict(template.params)
    first = build_job_spec(model=template.model or "builtin:tiny", units=template.units, **params)
    controlnets, fields = seq.main_stage_settings(first)
    units = template.units
    if init or refine > 0:
        stages = ([{"type": "img2img", "image": init, "strength": float(init_strength), "controlnets": controlnets}]
                  if init else list(first["stages"]))  # fmt: skip
        if refine > 0:
            stages.append({"type": "img2img", "strength": float(refine), "controlnets": controlnets})
        params.update(preset={**fields, "stages": stages}, negative_prompt=None, steps=None, guidance=None)
        units = []
    size = (int(params["width"]), int(params["height"]))
    passes = extract_passes(scene, camera, size, depth_range=_scene_depth_range(scene),
                            classes=object_classes(scene) or None, clay=init == "clay", color=init == "color")
    images: dict[str, Any] = dict(passes.control)
    if passes.clay is not None:
        grey = (passes.clay * 255.0 + 0.5).clip(0, 255).astype("uint8")
        images["clay"] = grey[..., None].repeat(3, axis=2)
    if passes.color is not None:
        images["color"] = passes.color
    return dataclasses.replace(template, params=params, units=units, images=images)


def finish_frame(
    scene: bpy.types.Scene,
    outcome: JobOutcome,
    camera: bpy.types.Object | None = None,
    *,
    camera_background: bool = False,
    compositor: bool = False,
    show: bool = True,
) -> bpy.types.Image:
    """Main-thread end of one stylized frame: the saved image, shown and placed where asked."""
    image = api.load_results(outcome)[-1]
    if show and bpy.context.window_manager is not None:
        from .blender.image_pixels import show_in_image_editors

        show_in_image_editors(image)
    if camera_background:
        target = camera or scene.camera
        if target is None:
            raise ValueError("no camera to put the background image on: set the scene camera")
        frame_outputs.set_camera_background(target, image)
    if compositor:
        frame_outputs.feed_compositor(scene, image)
    return image


# ------------------------------------------------------------------------------------------ sequences


def start_frames(
    scene: bpy.types.Scene,
    frame_start: int,
    frame_end: int,
    output_dir: str,
    template: JobRequest,
    *,
    camera: bpy.types.Object | None = None,
    depth_range: DepthRange | tuple[float, float] | None = None,
    shot_range: tuple[int, int] | None = None,
    options: FrameOptions | None = None,
    log: Callable[[str], None] = print,
) -> FrameRun:
    """A :class:`FrameRun` for the range (main thread); the depth range: given, else the scene's Set
    Depth Range, else the bounds over ``shot_range`` (default: the scene's frame range)."""
    source = "given"
    if depth_range is not None and not isinstance(depth_range, DepthRange):
        depth_range = DepthRange(*depth_range)
    if depth_range is None:
        depth_range = _scene_depth_range(scene)
        source = "the scene's Set Depth Range"
    return FrameRun(scene, template, frame_start, frame_end, output_dir, camera=camera, depth_range=depth_range,
                    depth_source=source, shot_range=shot_range, classes=object_classes(scene),
                    options=options, log=log)


def frames_outputs(
    scene: bpy.types.Scene, result: FramesResult, *, strip: bool = False, video: str | bool | None = None,
    fps: float | None = None,
) -> dict[str, Any]:
    """After a finished range: the sequencer strip and/or the video; returns what was made."""
    made: dict[str, Any] = {}
    start, end = result.record["range"]
    if strip:
        made["strip"] = frame_outputs.add_image_strip(scene, result.files, start).name
    if video:
        path = video if isinstance(video, str) else os.path.join(
            os.path.dirname(result.record_path), f"scenecast_frames_{start:04d}-{end:04d}.mp4")
        rate = fps or scene.render.fps / scene.render.fps_base
        made["video"] = frame_outputs.encode_video(result.files, path, rate)
    return made


def stylize_frames(
    scene: bpy.types.Scene,
    frame_start: int,
    frame_end: int,
    output_dir: str,
    *,
    strip: bool = False,
    video: str | bool | None = None,
    fps: float | None = None,
    camera: bpy.types.Object | None = None,
    depth_range: DepthRange | tuple[float, float] | None = None,
    shot_range: tuple[int, int] | None = None,
    options: FrameOptions | None = None,
    on_event: Callable[[Any], None] | None = None,
    cancel: threading.Event | None = None,
    **settings: Any,
) -> FramesResult:
    """Blocking: see ``api.stylize_frames``."""
    template = request_template(scene, **settings)
    run = start_frames(scene, frame_start, frame_end, output_dir, template, camera=camera,
                       depth_range=depth_range, shot_range=shot_range, options=options)
    result = run.run(on_event=on_event, cancel=cancel, on_status=lambda text: print(f"Scenecast: {text}"))
    if strip or video:
        result.record["outputs"] = frames_outputs(scene, result, strip=strip, video=video, fps=fps)
        seq.save_record(result.record_path, result.record)
    return result


def stylize_frame(
    scene: bpy.types.Scene,
    *,
    camera: bpy.types.Object | None = None,
    init: str | None = None,
    init_strength: float = 0.6,
    refine: float = 0.0,
    camera_background: bool = False,
    compositor: bool = False,
    on_event: Callable[[Any], None] | None = None,
    cancel: threading.Event | None = None,
    **settings: Any,
) -> bpy.types.Image:
    """Blocking: see ``api.stylize_frame``."""
    template = request_template(scene, **settings)
    request = prepare_frame(scene, template, camera, init=init, init_strength=init_strength, refine=refine)
    outcome = run_job(request, on_event=on_event, cancel=cancel)
    for note in outcome.notes:
        print(f"Scenecast: {note}")
    return finish_frame(scene, outcome, camera, camera_background=camera_background, compositor=compositor)
