"""Stylize one frame, or a frame range: passes → a pipeline → saved images.

One frame (:func:`stylize_frame`): the passes (and the clay or colour render for ``init``) → the
preset's pipeline, or ControlNets from the units (default depth + edges), optionally starting as
img2img from the render and/or ending with an img2img ``refine`` stage → a saved image, shown in
the Image Editor, optionally the camera's background and/or a compositor Image node.

A frame range (:func:`stylize_frames`): ``blender.frame_run.FrameRun`` (resumable, consistent
across frames; see there) one job per frame, then optionally an image strip in the sequencer and a
video from Blender's FFmpeg. Both are :class:`FeatureRun` generators.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import bpy

from ..blender import frame_outputs
from ..blender import settings as blender_settings
from ..blender.frame_run import FrameOptions, FrameRun, FramesResult
from ..blender.held import Held
from ..core import frame_sequence as seq
from ..core.conventions import DepthRange
from ..core.job_chain import JobSteps
from ..core.jobspec import build_job_spec
from ..core.remote_job import JobFailed, JobOutcome, JobRequest
from .base import FeatureRun, Progress
from . import checks
from .generate import extract_passes, load_results
from .settings import JobSettings

INIT_SOURCES = ("clay", "color")


@dataclass(frozen=True)
class FrameLook:
    """How one stylized frame starts and ends: ``init`` "clay"/"color" (img2img from that render at
    ``init_strength``), ``refine`` > 0 (a final img2img stage at that strength)."""

    init: str | None = None
    init_strength: float = 0.6
    refine: float = 0.0

    def check(self) -> None:
        if self.init is not None and self.init not in INIT_SOURCES:
            raise ValueError(f"init must be None or one of {', '.join(INIT_SOURCES)}, got {self.init!r}")
        for name, value in (("init_strength", self.init_strength), ("refine", self.refine)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} {value} is outside 0..1")
        if self.init and self.init_strength <= 0:
            raise ValueError("init_strength must be above 0 with init (1 repaints fully)")


def prepare_frame(scene: bpy.types.Scene, settings: JobSettings, camera: bpy.types.Object | None = None,
                  look: FrameLook = FrameLook()) -> JobRequest:
    """Main-thread half of one stylized frame: passes (and the render for ``init``) and the pipeline."""
    look.check()
    params = settings.params
    first = build_job_spec(model=settings.fields.get("model") or "builtin:tiny", units=list(settings.units), **params)
    controlnets, fields = seq.main_stage_settings(first)
    units: list[dict[str, Any]] = [dict(u) for u in settings.units]
    if look.init or look.refine > 0:
        stages = ([{"type": "img2img", "image": look.init, "strength": float(look.init_strength),
                    "controlnets": controlnets}] if look.init else list(first["stages"]))  # fmt: skip
        if look.refine > 0:
            stages.append({"type": "img2img", "strength": float(look.refine), "controlnets": controlnets})
        params.update(preset={**fields, "stages": stages}, negative_prompt=None, steps=None, guidance=None)
        units = []
    passes = extract_passes(scene, camera, (settings.width, settings.height),
                            clay=look.init == "clay", color=look.init == "color")
    images: dict[str, Any] = dict(passes.control)
    if passes.clay is not None:
        grey = (passes.clay * 255.0 + 0.5).clip(0, 255).astype("uint8")
        images["clay"] = grey[..., None].repeat(3, axis=2)
    if passes.color is not None:
        images["color"] = passes.color
    return settings.request(images=images, name=scene.name, params=params, units=units)


def finish_frame(scene: bpy.types.Scene, outcome: JobOutcome, background: bpy.types.Object | None = None, *,
                 compositor: bool = False, show: bool = True) -> bpy.types.Image:
    """Main-thread end of one stylized frame: the saved image, shown and placed where asked."""
    image = load_results(outcome)[-1]
    if show and bpy.context.window_manager is not None:
        from ..blender.image_pixels import show_in_image_editors

        show_in_image_editors(image)
    if background is not None:
        frame_outputs.set_camera_background(background, image)
    if compositor:
        frame_outputs.feed_compositor(scene, image)
    return image


def stylize_frame(scene: bpy.types.Scene, settings: JobSettings, camera: bpy.types.Object | None = None, *,
                  look: FrameLook = FrameLook(), camera_background: bool = False, compositor: bool = False,
                  show: bool = True) -> FeatureRun[bpy.types.Image]:
    """The Stylize Frame run; passes are rendered now. ``camera_background`` puts the image behind
    ``camera`` (default: the scene camera)."""
    background = (camera or scene.camera) if camera_background else None
    if camera_background and background is None:
        raise ValueError("no camera to put the background image on: set the scene camera")
    look.check()
    checks.before_render(settings.fields, settings.width, settings.height, settings.units, settings.loras)
    request = prepare_frame(scene, settings, camera, look)
    held = Held(scene, [background] if background is not None else [], what="Stylize Frame")
    background_name = background.name if background is not None else None  # a name across the yield
    progress, notes = Progress(), list[str]()

    def steps() -> JobSteps[bpy.types.Image]:
        progress.set(0, 1, "stylizing")
        outcome: JobOutcome = yield request
        try:
            notes.extend(outcome.notes)
            target = held.object(background_name) if background_name is not None else None
            return finish_frame(held.scene, outcome, target, compositor=compositor, show=show)
        finally:
            outcome.discard()  # failed before the files were loaded: no saving thread outlives the run

    return FeatureRun("Stylize Frame", steps(), held, progress, notes)


# ------------------------------------------------------------------------------------------ sequences


def start_frames(scene: bpy.types.Scene, settings: JobSettings, frame_start: int, frame_end: int, output_dir: str, *,
                 camera: bpy.types.Object | None = None, depth_range: DepthRange | tuple[float, float] | None = None,
                 shot_range: tuple[int, int] | None = None, options: FrameOptions | None = None) -> FrameRun:
    """A :class:`FrameRun` for the range (main thread); the depth range: given, else the scene's Set
    Depth Range, else the bounds over ``shot_range`` (default: the scene's frame range)."""
    checks.before_render(settings.fields, settings.width, settings.height, settings.units, settings.loras)
    source = "given"
    if depth_range is not None and not isinstance(depth_range, DepthRange):
        depth_range = DepthRange(*depth_range)
    if depth_range is None:
        depth_range = blender_settings.depth_override(scene)
        source = "the scene's Set Depth Range"
    return FrameRun(scene, settings.request(), frame_start, frame_end, output_dir, camera=camera,
                    depth_range=depth_range, depth_source=source, shot_range=shot_range,
                    classes=blender_settings.object_classes(scene), options=options,
                    first_frame_reference=settings.reference if settings.first_view_reference else ())


def frames_outputs(scene: bpy.types.Scene, result: FramesResult, *, strip: bool = False,
                   video: str | bool | None = None, fps: float | None = None) -> dict[str, Any]:
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


def frame_steps(run: FrameRun, progress: Progress, *, snapshot: bool = False, show: bool = False, strip: bool = False,
                video: str | bool | None = None, fps: float | None = None) -> JobSteps[FramesResult]:
    """Every missing frame in order, one job each (a warped frame needs none); the run is closed
    (record, staging folder, scene state with ``snapshot``) however it ends."""
    status, error = "failed", None
    if snapshot:
        run.snapshot()
    try:
        count = len(run.frames)
        while (task := run.next_task()) is not None:
            progress.set(count - len(run.pending()), count, task.mode, unit="frame")
            outcome = None
            if task.request is not None:
                outcome = yield task.request
                for note in outcome.notes:
                    run.log(f"Scenecast: {note}")
            run.complete(task, outcome)
            if show and run.last_output is not None:
                frame_outputs.show_frame(run.last_output)
        run.finish_saves()  # the last frame's PNG, before the run says done
        status = "done"
    except GeneratorExit:
        status, error = "cancelled", "the frame sequence was cancelled"
        raise
    except JobFailed as exc:
        status, error = exc.status, str(exc.message)
        raise
    except BaseException as exc:
        error = str(exc)
        raise
    finally:
        run.close(status, error)
    result = run.result()
    if strip or video:
        result.record["outputs"] = frames_outputs(run.scene, result, strip=strip, video=video, fps=fps)
        seq.save_record(result.record_path, result.record)
    return result


def stylize_frames(scene: bpy.types.Scene, settings: JobSettings, frame_start: int, frame_end: int, output_dir: str,
                   *, snapshot: bool = False, show: bool = False, strip: bool = False,
                   video: str | bool | None = None, fps: float | None = None, **frame_args: Any,
                   ) -> FeatureRun[FramesResult]:
    """The Stylize Frames run (validated now); ``frame_args`` as :func:`start_frames`."""
    run = start_frames(scene, settings, frame_start, frame_end, output_dir, **frame_args)
    progress = Progress(unit="frame", count=len(run.frames))
    steps = frame_steps(run, progress, snapshot=snapshot, show=show, strip=strip, video=video, fps=fps)
    return FeatureRun("Stylize Frames", steps, run.held, progress)
