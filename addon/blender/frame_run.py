"""A resumable run over a frame range: passes per frame, one backend job per frame, one PNG per frame.

The run is split so that the modal operator and a blocking script drive the same code:
:meth:`FrameRun.next_task` (main thread: render the frame's passes with the Vector pass, warp the
previous output, build the job) → ``core.remote_job.run_job`` (any thread) → :meth:`FrameRun.complete`
(main thread: the result's pixels become the previous frame, flicker; its PNG, saved meanwhile in
the background, is moved into ``frame_####.png`` and recorded when the next frame's job is back) … → :meth:`FrameRun.close`.
``features.stylize.frame_steps`` chains them as a generator that ``api`` runs blocking and the UI modally. The scene's frame and render settings are as they were
after every step (each frame's extraction restores them, also on failure); a blocking run also
snapshots them whole and restores them in ``close``.

One depth range and one seed for every frame (the depth range from the whole shot's bounds unless
given), so frames and farm machines agree. Frame 1 of the range is a normal generate; each later frame
is one job: inpaint the disocclusion holes of the warped previous frame, then a light img2img refresh
(``core.frame_sequence.later_stages``). ``consistency=False`` generates every frame independently with
the same seed (the flicker baseline). Finished frames are never redone: a new run over the same range
starts at the first missing frame and warps from the previous frame's PNG.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Mapping
from typing import Any

import bpy
import numpy as np

from ..core import frame_sequence as seq
from ..core import png
from ..core.conventions import DepthRange
from ..core.errors import ScenecastError
from ..core.files import write_atomic
from ..core.jobspec import REFERENCE_KEY, build_job_spec
from ..core.remote_job import JobOutcome, JobRequest, as_rgb8
from .extract import Passes, extract_passes, scene_depth_range
from .frame_types import FrameOptions, FramesResult, FrameTask  # noqa: F401  (part of this module's API)
from .held import DataGone, Held
from .scene_state import capture_state, restore_state

STAGING_DIR = ".scenecast-parts"


class FrameRun:
    """See the module doc. Construct on the main thread; it validates everything before any render."""

    def __init__(
        self,
        scene: bpy.types.Scene,
        template: JobRequest,
        frame_start: int,
        frame_end: int,
        output_dir: str,
        *,
        camera: bpy.types.Object | None = None,
        depth_range: DepthRange | None = None,
        depth_source: str = "",
        shot_range: tuple[int, int] | None = None,
        classes: Mapping[str, str] | None = None,
        options: FrameOptions | None = None,
        log: Callable[[str], None] = print,
        first_frame_reference: tuple[dict[str, Any], ...] = (),
    ) -> None:
        self.template, self.log = template, log
        #: reference="first view": these stage reference entries, with the first frame's output as the image
        self.first_frame_reference = tuple(dict(r) for r in first_frame_reference)
        self.options = options or FrameOptions()
        self.options.check()
        self.frames = seq.check_range(frame_start, frame_end)
        camera = camera or scene.camera
        if camera is None or camera.type != "CAMERA":
            raise ScenecastError("the scene has no camera", "add a camera and make it the scene camera, or pass camera=")
        # Names, not references: the modal run spans many ticks, and undo or a file load frees IDs.
        self.held = Held(scene, [camera], what="Stylize Frames")
        self.camera_name = camera.name
        self.output_dir = os.path.abspath(bpy.path.abspath(output_dir))
        self.size = (int(template.params["width"]), int(template.params["height"]))
        self.classes = dict(classes or {})
        context_layer = bpy.context.view_layer if bpy.context.scene == scene else None
        self.view_layer_name = (context_layer or scene.view_layers[0]).name
        # Validate the job settings now (no model needed yet): a typo must not cost a render.
        first_spec = build_job_spec(model=template.model or "builtin:tiny", units=template.units, **template.params)
        self.controlnets, self.fields = seq.main_stage_settings(first_spec)
        self.seed = int(template.params.get("seed") or 0)
        self.shot_range = shot_range or (min(scene.frame_start, self.frames[0]), max(scene.frame_end, self.frames[-1]))
        if depth_range is None:  # restores the current frame itself
            shot = range(int(self.shot_range[0]), int(self.shot_range[1]) + 1)
            depth_range = scene_depth_range(scene, [self.camera], self.size, shot, view_layer=self.view_layer)
            depth_source = f"bounds over frames {self.shot_range[0]}-{self.shot_range[1]}"
        self.depth_range = depth_range
        self.settings = self._settings(depth_source)
        os.makedirs(self.output_dir, exist_ok=True)
        self.record_path = seq.record_path(self.output_dir, self.frames[0], self.frames[-1])
        # A restart redoes the finished frames one at a time: each old file stays until its new one
        # replaces it, so a failure or cancel keeps the old frames.
        self._redo = {f for f in self.frames if os.path.isfile(seq.frame_path(self.output_dir, f))} if self.options.restart else set()
        self.record = self._open_record()
        self.skipped = [f for f in self.frames if os.path.isfile(seq.frame_path(self.output_dir, f)) and f not in self._redo]
        self.made: list[int] = []
        self._previous: tuple[int, np.ndarray, Passes] | None = None  # frame, output RGB, its passes
        self._first_output: np.ndarray | None = None  # the range's first frame's RGB, once this run made it
        self._unsaved: tuple[FrameTask, JobOutcome, dict[str, Any], float] | None = None  # see finish_saves
        self._closed = False
        # Each frame's extraction restores the scene itself; a blocking run also snapshots it whole
        # (restored in close). The modal operator does not: the user may change the scene meanwhile.
        self._state: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------ held data

    @property
    def scene(self) -> bpy.types.Scene:
        return self.held.scene

    @property
    def camera(self) -> bpy.types.Object:
        return self.held.object(self.camera_name)

    @property
    def view_layer(self) -> bpy.types.ViewLayer:
        layer = self.scene.view_layers.get(self.view_layer_name)
        if layer is None:
            raise DataGone(f"view layer {self.view_layer_name!r} was deleted or undone away, so Stylize Frames stopped",
                           "keep the view layer while Scenecast runs, then run it again")
        return layer

    def snapshot(self) -> None:
        """Snapshot the scene's frame and render settings whole; ``close`` restores them (blocking runs:
        the modal run does not, the user may change the scene meanwhile)."""
        self._state = capture_state(self.scene, self.view_layer)

    # ------------------------------------------------------------------------------------ settings

    def _settings(self, depth_source: str) -> dict[str, Any]:
        p, o = self.template.params, self.options
        return {
            "prompt": p.get("prompt"), "negative_prompt": self.fields.get("negative_prompt"), "seed": self.seed,
            "model": self.template.model or f"(default: {self.template.default_model})",
            "width": self.size[0], "height": self.size[1], "camera": self.camera_name, "scene": self.held.scene_name,
            "depth_range": [self.depth_range.near, self.depth_range.far], "depth_source": depth_source,
            "shot_range": list(self.shot_range), "steps": self.fields.get("steps"), "guidance": self.fields.get("guidance"),
            "first_frame_preset": p.get("preset") if isinstance(p.get("preset"), (str, dict)) else None,
            "units": self.template.units, "later_controlnets": self.controlnets, "consistency": o.consistency,
            "hole_strength": o.hole_strength, "refresh_strength": o.refresh_strength, "dilate_px": o.dilate_px,
            "depth_tolerance": o.depth_tolerance, "object_ids": o.object_ids,
        }  # fmt: skip

    def _open_record(self) -> dict[str, Any]:
        done = [f for f in self.frames if os.path.isfile(seq.frame_path(self.output_dir, f))]
        record = seq.load_record(self.record_path)
        if record is not None and not self.options.restart and done:
            conflicts = seq.resume_conflicts(record, self.settings)
            if conflicts:
                raise ScenecastError(
                    f"{self.output_dir} already holds frames {done[0]}-{done[-1]} of this range made with other"
                    f" settings ({', '.join(conflicts)})",
                    "use another output folder, put the settings back to continue, or restart the range",
                )
            record["settings"] = self.settings
        else:
            record = seq.new_record(self.settings, self.frames[0], self.frames[-1])
        resumed_at = self.frames[0] if self.options.restart else seq.first_missing(self.output_dir, self.frames)
        record["runs"].append({"started": time.time(), "resumed_at": resumed_at, "status": "running"})
        record["status"] = "running"
        seq.save_record(self.record_path, record)
        return record

    # ------------------------------------------------------------------------------------ the steps

    def pending(self) -> list[int]:
        """Frames of the range without a finished file (or, restarting, not yet redone), in order."""
        unsaved = self._unsaved[0].frame if self._unsaved is not None else None  # done, its PNG on its way
        return [f for f in self.frames if f != unsaved
                and (f in self._redo or not os.path.isfile(seq.frame_path(self.output_dir, f)))]

    def next_task(self) -> FrameTask | None:
        """Main thread: the next missing frame's passes, warp and job request; None when all are done."""
        todo = self.pending()
        if not todo:
            return None
        frame = todo[0]
        t0 = time.perf_counter()
        passes = self._passes(frame, vector=True)
        t1 = time.perf_counter()
        previous = self._previous_output(frame)
        step = None
        if previous is not None:
            _, prev_rgb, prev_passes = previous
            step = seq.consistency_inputs(
                prev_rgb, passes.raw["vector"], passes.raw["depth"], prev_passes.raw["depth"],
                object_id_t=passes.raw["object_id"] if self.options.object_ids else None,
                object_id_prev=prev_passes.raw["object_id"] if self.options.object_ids else None,
                dilate_px=self.options.dilate_px, depth_tolerance=self.options.depth_tolerance,
            )
        t2 = time.perf_counter()
        images: dict[str, Any] = dict(passes.control)
        params = dict(self.template.params)
        units = self.template.units
        mode = "generate"
        if step is not None and self.options.consistency:
            later = seq.later_stages(self.controlnets, self.fields, has_holes=bool(step.holes.any()),
                                     hole_strength=self.options.hole_strength,
                                     refresh_strength=self.options.refresh_strength)
            stages = [] if later is None else [s["type"] for s in later["stages"]]
            mode = "+".join("refresh" if s == "img2img" else s for s in stages) or "warp"
            params.update(preset=later, negative_prompt=None, steps=None, guidance=None)
            units = []
            images[seq.WARPED_KEY] = step.warped
            images[seq.HOLES_KEY] = step.mask_image()
        self._reference(frame, params, images)
        request = None
        if mode != "warp":
            request = dataclasses.replace(
                self.template, params=params, units=units, images=images,
                output_dir=os.path.join(self.output_dir, STAGING_DIR), name=f"frame_{frame:04d}",
            )
        timings = {"passes": t1 - t0, "warp": t2 - t1, "render": float(sum(v for k, v in passes.timings.items()
                                                                         if k == "render"))}
        return FrameTask(frame=frame, mode=mode, request=request, step=step, passes=passes, timings=timings, started=t0)

    # -- reference images -----------------------------------------------------------------------------

    def _reference(self, frame: int, params: dict[str, Any], images: dict[str, Any]) -> None:
        """The frame's reference image: the template's (a fixed one), or, with ``first_frame_reference``,
        the first frame's output for every later frame."""
        if REFERENCE_KEY in self.template.images:
            images[REFERENCE_KEY] = self.template.images[REFERENCE_KEY]
            return
        first = seq.frame_path(self.output_dir, self.frames[0])
        if self.first_frame_reference and frame != self.frames[0] and (self._first_output is not None
                                                                      or os.path.isfile(first)):
            if self._first_output is None:  # a resumed run: the first frame is on disk only
                with open(first, "rb") as fh:
                    self._first_output = as_rgb8(png.decode_png(fh.read()))
            images[REFERENCE_KEY] = self._first_output
            params["reference"] = [dict(r) for r in self.first_frame_reference]

    def complete(self, task: FrameTask, outcome: JobOutcome | None) -> dict[str, Any]:
        """Main thread: the frame's output (the job's pixels, or the warped frame) becomes the previous
        frame of the next, with its flicker and timings. A job's PNG (saved in the background after
        ``ready``) becomes ``frame_####.png`` and enters the record in :meth:`finish_saves`, which the
        next frame's ``complete`` calls: the save overlaps that frame's job. Returns the entry."""
        try:
            self.finish_saves()  # the previous frame's PNG, saved while this frame's job ran
        except BaseException:
            if outcome is not None:
                outcome.discard()  # the run fails here: this frame's PNG is not wanted
            raise
        wall = time.perf_counter() - task.started - task.timings["passes"] - task.timings["warp"]
        path = seq.frame_path(self.output_dir, task.frame)
        entry: dict[str, Any] = {"file": os.path.basename(path), "mode": task.mode, "job_id": None}
        if outcome is None:
            assert task.step is not None, "only a warped frame needs no job"
            write_atomic(path, png.encode_png(task.step.warped))
            rgb = task.step.warped
        else:
            try:
                rgb = outcome.image(0)  # the pixels taken at `ready`: no PNG decode here
            except BaseException:
                outcome.discard()
                raise
            entry.update(job_id=outcome.job_id, model=outcome.model)
        self._frame_flicker(task, rgb, entry)
        self._previous = (task.frame, rgb, task.passes)
        if task.frame == self.frames[0]:
            self._first_output = rgb
        self._redo.discard(task.frame)
        if outcome is None:
            self._file(task, entry, path)
        else:
            self._unsaved = (task, outcome, entry, wall)
        return entry

    def finish_saves(self) -> None:
        """The last job's PNG (text chunks and all), once written, moved into ``frame_####.png`` and its
        frame into the record; raises why it could not be saved (the frame is then not kept)."""
        if self._unsaved is None:
            return
        task, outcome, entry, wall = self._unsaved
        self._unsaved = None
        try:
            outcome.wait_files()
        finally:
            outcome.discard()  # failed: no saving thread outlives the run (no-op after the wait)
        path = seq.frame_path(self.output_dir, task.frame)
        os.replace(outcome.files[0], path)  # same folder tree: an atomic rename, never a partial file
        for extra in outcome.files[1:]:
            os.remove(extra)
        status = outcome.status
        diffusion = float((status.get("finished") or 0) - (status.get("started") or 0))
        diffusion = diffusion if 0 < diffusion < wall + 1.0 else 0.0
        task.timings["diffusion"] = diffusion
        task.timings["transport"] = max(0.0, wall - diffusion)
        self._file(task, entry, path)

    def _file(self, task: FrameTask, entry: dict[str, Any], path: str) -> None:
        """A frame whose file is in place: into the record (a resumed run skips it from now on)."""
        task.timings["total"] = time.perf_counter() - task.started
        entry["timings"] = {k: round(v, 4) for k, v in task.timings.items()}
        entry["finished"] = time.time()
        self.made.append(task.frame)
        self.record["frames"][str(task.frame)] = entry
        seq.save_record(self.record_path, self.record)
        flick = entry.get("flicker")
        self.log(f"Scenecast: frame {task.frame} ({task.mode}) done in {task.timings['total']:.2f} s"
                 + (f", flicker {flick:.2f}" if flick is not None else "") + f" → {path}")

    def _frame_flicker(self, task: FrameTask, rgb: np.ndarray, entry: dict[str, Any]) -> None:
        """The frame's flicker against the warped previous output into ``entry`` (time counted as warp)."""
        t0 = time.perf_counter()
        previous = self._previous_output(task.frame)
        if task.step is not None and previous is not None:
            entry["flicker"] = seq.clean_float(seq.frame_flicker(rgb, previous[1], task.step))
            entry["hole_fraction"] = round(task.step.hole_fraction, 5)
        task.timings["warp"] += time.perf_counter() - t0

    def close(self, status: str, error: str | None = None) -> None:
        """End the run: record the status, drop the staging folder, put the scene back as it was."""
        if self._closed:
            return
        self._closed = True
        try:
            try:  # a finished frame whose PNG was still on its way is kept (cancelled or not)
                self.finish_saves()
            except (ScenecastError, OSError) as exc:
                self.log(f"Scenecast: the last frame's PNG was not saved: {exc}")
            self.record["status"] = status
            self.record["runs"][-1].update(status=status, ended=time.time(), made=self.made, error=error)
            seq.save_record(self.record_path, self.record)
            shutil.rmtree(os.path.join(self.output_dir, STAGING_DIR), ignore_errors=True)
            if self.record.get("flicker_mean") is not None:
                which = "with" if self.options.consistency else "without"
                self.log(f"Scenecast: flicker {self.record['flicker_mean']:.2f} (mean |frame − warped previous|,"
                         f" 0..255, {which} consistency) for frames {self.frames[0]}-{self.frames[-1]}")
        finally:
            if self._state is not None:
                try:
                    failed = restore_state(self.scene, self.view_layer, self._state)
                except DataGone:  # nothing left to restore
                    failed = []
                if failed:
                    self.log("Scenecast: could not restore " + "; ".join(failed))

    @property
    def last_output(self) -> np.ndarray | None:
        """The latest finished frame's output, (H, W, 3) uint8 row 0 top (for showing progress)."""
        return None if self._previous is None else self._previous[1]

    def result(self) -> FramesResult:
        files = [seq.frame_path(self.output_dir, f) for f in self.frames]  # old frames a restart kept count too
        return FramesResult(files=[f for f in files if os.path.isfile(f)], made=list(self.made),
                            skipped=list(self.skipped), record_path=self.record_path, record=self.record)

    # ------------------------------------------------------------------------------------ helpers

    def _passes(self, frame: int, vector: bool) -> Passes:
        return extract_passes(self.scene, self.camera, self.size, depth_range=self.depth_range, frame=frame,
                              classes=self.classes or None, vector=vector, view_layer=self.view_layer)

    def _previous_output(self, frame: int) -> tuple[int, np.ndarray, Passes] | None:
        """Frame − 1's output and passes when it belongs to this range and is finished (from memory,
        or its PNG and re-rendered passes when this run resumes there)."""
        prev = frame - 1
        if prev < self.frames[0]:
            return None
        if self._previous is not None and self._previous[0] == prev:
            return self._previous
        path = seq.frame_path(self.output_dir, prev)
        if prev in self._redo or not os.path.isfile(path):  # an old frame being redone: not this run's
            return None
        with open(path, "rb") as fh:
            rgb = as_rgb8(png.decode_png(fh.read()))
        self._previous = (prev, rgb, self._passes(prev, vector=False))
        return self._previous
