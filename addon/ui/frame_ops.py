"""Operators: Stylize Frame (this view, one image) and Stylize Frames (a resumable frame range).

Like Generate: modal in the UI, passes on the main thread and each backend job in a worker thread
(``job_runner``), progress per frame in the status bar, Esc or Cancel stops during a job (cancelled on
the server) and between frames (finished frames stay; the next run continues after them). In
background mode (``blender -b``) both block. Settings: ``Scene.scenecast`` (prompt, model, seed,
size, units) and ``Scene.scenecast_frames`` (the Frames panel).
"""

from __future__ import annotations

import os
import threading
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import bpy

from .. import frame_api
from ..blender import frame_outputs
from ..blender.frame_run import FrameOptions, FrameRun, FrameTask
from ..blender.view_camera import view_camera
from ..core import backend_process
from ..core.errors import ScenecastError
from ..core.remote_job import JobFailed, JobRequest, run_job
from . import job_runner
from .frame_panel import frame_range, frames_output_dir
from .operators import _scene, _set_status, error_text

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems as Result
else:
    Result = str

_TIMER_SECONDS = 0.1
_ERRORS = (ScenecastError, ValueError, RuntimeError, OSError, backend_process.BackendProcessError)
_active: dict[str, Any] = {}


def active_run() -> "SCENECAST_OT_stylize_frames | None":
    """The Stylize Frames operator running now, if any."""
    return _active.get("run")


def _init(f: Any) -> str | None:
    return None if f.init == "NONE" else f.init.lower()


def _step_text(event: Any) -> str | None:
    data = event.data or {}
    if event.type == "step":
        return f"step {data.get('step')}/{data.get('steps')}"
    if event.type == "stage":
        return f"stage {int(data.get('index') or 0) + 1}: {data.get('stage')}"
    if event.type == "queued":
        return f"queued (position {data.get('position')})"
    return None


class _Modal:
    """Shared modal plumbing: timer, progress, status, Esc, and the worker job of the moment."""

    _timer: Any = None
    _job: job_runner.RunningJob | None = None

    def _begin(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        self._timer = wm.event_timer_add(_TIMER_SECONDS, window=context.window)
        wm.progress_begin(0, 1000)
        wm.modal_handler_add(self)  # type: ignore[arg-type]  # mixed into Operators only

    def _end(self, context: bpy.types.Context, status: str) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if self._job is not None:
            self._job.cancel.set()
            job_runner.finish(self._job)
            self._job = None
        _set_status(context, "")
        wm.scenecast_status = status  # type: ignore[attr-defined]


class SCENECAST_OT_stylize_frame(_Modal, bpy.types.Operator):
    """Stylize the camera's (or the viewport's) view into one image, shown in the Image Editor (Esc cancels)"""

    bl_idname = "scenecast.stylize_frame"
    bl_label = "Stylize Frame"
    bl_options = {"REGISTER", "UNDO"}

    _camera_name: str = ""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and job_runner.active() is None and active_run() is None

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        return self.execute(context)

    def _prepare(self, context: bpy.types.Context) -> JobRequest:
        scene = _scene(context)
        f = scene.scenecast_frames  # type: ignore[attr-defined]
        template = frame_api.request_template(scene)
        with ExitStack() as stack:
            camera = scene.camera
            space, region = context.space_data, context.region_data
            if f.from_view and isinstance(space, bpy.types.SpaceView3D) and region is not None:
                camera = stack.enter_context(view_camera(scene, space, region))
            if camera is None:
                raise ValueError("no camera: set the scene camera, or use From View in a 3D Viewport")
            self._camera_name = camera.name if camera == scene.camera else ""
            return frame_api.prepare_frame(scene, template, camera, init=_init(f), init_strength=f.init_strength,
                                           refine=f.refine)

    def _finish_image(self, context: bpy.types.Context, outcome: Any) -> None:
        f = context.scene.scenecast_frames  # type: ignore[attr-defined]
        camera = bpy.data.objects.get(self._camera_name) if self._camera_name else None
        image = frame_api.finish_frame(_scene(context), outcome, camera,
                                       camera_background=f.camera_background and camera is not None,
                                       compositor=f.compositor)
        for note in outcome.notes:
            self.report({"WARNING"}, note)
        self.report({"INFO"}, f"Scenecast: {image.name} saved as {bpy.path.abspath(image.filepath)}")

    def execute(self, context: bpy.types.Context) -> set[Result]:
        try:
            request = self._prepare(context)
            if bpy.app.background or context.window is None:
                outcome = run_job(request, on_status=lambda text: print(f"Scenecast: {text}"))
                self._finish_image(context, outcome)
                return {"FINISHED"}
            self._job = job_runner.start(request)
        except _ERRORS as exc:
            self.report({"WARNING"} if isinstance(exc, JobFailed) and exc.status == "cancelled" else {"ERROR"},
                        error_text(exc))
            return {"CANCELLED"}
        self._begin(context)
        _set_status(context, "stylizing…", 0.0)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        job = self._job
        try:
            if job is None:
                return {"CANCELLED"}
            if event.type == "ESC" and event.value == "PRESS":
                job.cancel.set()
                _set_status(context, "cancelling…")
                return {"RUNNING_MODAL"}
            if event.type != "TIMER":
                return {"PASS_THROUGH"}
            for message in job.drain():
                if message.kind == "event" and _step_text(message.event):
                    data = message.event.data or {}
                    done = (data.get("step") or 0) / max(1, data.get("steps") or 1)
                    context.window_manager.progress_update(int(1000 * done))
                    _set_status(context, _step_text(message.event) or "", done)
                elif message.kind == "status":
                    _set_status(context, message.text)
                elif message.kind == "done":
                    self._finish_image(context, message.outcome)
                    self._end(context, "stylized frame done")
                    return {"FINISHED"}
                elif message.kind == "error" and message.error is not None:
                    raise message.error
            if not job.alive() and job.messages.empty():
                raise RuntimeError("the job's worker stopped")
        except BaseException as exc:  # noqa: BLE001 - a modal must end cleanly, whatever went wrong
            cancelled = isinstance(exc, JobFailed) and exc.status == "cancelled"
            self.report({"WARNING"} if cancelled else {"ERROR"}, error_text(exc))
            self._end(context, "cancelled" if cancelled else f"failed: {error_text(exc)}")
            return {"CANCELLED"}
        return {"PASS_THROUGH"}

    def cancel(self, context: bpy.types.Context) -> None:
        self._end(context, "cancelled")


class SCENECAST_OT_stylize_frames(_Modal, bpy.types.Operator):
    """Stylize the frame range into frame_####.png files, consistent across frames; continues an earlier run (Esc cancels)"""

    bl_idname = "scenecast.stylize_frames"
    bl_label = "Stylize Frames"
    bl_options = {"REGISTER"}

    restart: bpy.props.BoolProperty(name="Restart", default=False,  # type: ignore[valid-type]
                                    description="Redo the range's finished frames")

    _run: FrameRun | None = None
    _task: FrameTask | None = None
    _cancel: threading.Event | None = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and job_runner.active() is None and active_run() is None

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        return self.execute(context)

    def execute(self, context: bpy.types.Context) -> set[Result]:
        scene = _scene(context)
        f = scene.scenecast_frames  # type: ignore[attr-defined]
        start, end = frame_range(scene)
        options = FrameOptions(consistency=f.consistency, hole_strength=f.hole_strength,
                               refresh_strength=f.refresh_strength, dilate_px=f.dilate_px, restart=self.restart)
        try:
            template = frame_api.request_template(scene)
            run = frame_api.start_frames(scene, start, end, frames_output_dir(f.output_dir), template, options=options)
        except _ERRORS as exc:
            self.report({"ERROR"}, error_text(exc))
            return {"CANCELLED"}
        if bpy.app.background or context.window is None:
            try:
                result = run.run(on_status=lambda text: print(f"Scenecast: {text}"))
                self._outputs(context, result)
            except _ERRORS as exc:
                self.report({"WARNING"} if isinstance(exc, JobFailed) and exc.status == "cancelled" else {"ERROR"},
                            error_text(exc))
                return {"CANCELLED"}
            return {"FINISHED"}
        self._run, self._cancel = run, threading.Event()
        _active["run"] = self
        self._begin(context)
        _set_status(context, f"frames {start}-{end}: starting…", 0.0)
        return {"RUNNING_MODAL"}

    def _outputs(self, context: bpy.types.Context, result: Any) -> None:
        f = context.scene.scenecast_frames  # type: ignore[attr-defined]
        made = frame_api.frames_outputs(_scene(context), result, strip=f.add_strip, video=f.encode_video)
        extra = f", video {made['video']}" if "video" in made else ""
        self.report({"INFO"}, f"Scenecast: {len(result.made)} frame(s) made, {len(result.skipped)} kept, in"
                              f" {os.path.dirname(result.record_path)}{extra}")

    def stop(self) -> None:
        """Cancel: the job in flight on the server, and no further frames."""
        if self._cancel is not None:
            self._cancel.set()
        if self._job is not None:
            self._job.cancel.set()

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        run = self._run
        try:
            if run is None:
                return {"CANCELLED"}
            if event.type == "ESC" and event.value == "PRESS":
                self.stop()
                _set_status(context, "cancelling…")
                return {"RUNNING_MODAL"}
            if event.type != "TIMER":
                return {"PASS_THROUGH"}
            if self._cancel is not None and self._cancel.is_set() and self._job is None:
                raise JobFailed("the frame sequence was cancelled", None, status="cancelled")
            if self._job is None:
                return self._start_next(context, run)
            self._drain(context, run)
        except BaseException as exc:  # noqa: BLE001 - a modal must end cleanly, whatever went wrong
            cancelled = isinstance(exc, JobFailed) and exc.status == "cancelled"
            self.report({"WARNING"} if cancelled else {"ERROR"}, error_text(exc) + (
                "; finished frames are kept, Stylize Frames continues after them" if cancelled else ""))
            run_status = exc.status if isinstance(exc, JobFailed) else "failed"
            if run is not None:
                run.close(run_status, error_text(exc))
            self._stop_modal(context, "cancelled" if cancelled else f"failed: {error_text(exc)}")
            return {"CANCELLED"}
        return {"PASS_THROUGH"}

    def _start_next(self, context: bpy.types.Context, run: FrameRun) -> set[Result]:
        done = len(run.frames) - len(run.pending())
        task = run.next_task()  # main thread: this frame's passes and warp
        if task is None:
            run.close("done")
            self._outputs(context, run.result())
            self._stop_modal(context, f"frames done: {len(run.made)} made")
            return {"FINISHED"}
        _set_status(context, f"frame {task.frame} ({done + 1}/{len(run.frames)}): {task.mode}", done / len(run.frames))
        if task.request is None:
            self._complete(context, run, task, None)
        else:
            self._task, self._job = task, job_runner.start(task.request)
        return {"PASS_THROUGH"}

    def _drain(self, context: bpy.types.Context, run: FrameRun) -> None:
        job, task = self._job, self._task
        assert job is not None and task is not None
        n = len(run.frames)
        done = n - len(run.pending())
        for message in job.drain():
            if message.kind == "event" and _step_text(message.event):
                data = message.event.data or {}
                part = (data.get("step") or 0) / max(1, data.get("steps") or 1) if message.event.type == "step" else 0.0
                context.window_manager.progress_update(int(1000 * (done + part) / n))
                _set_status(context, f"frame {task.frame} ({done + 1}/{n}): {_step_text(message.event)}", (done + part) / n)
            elif message.kind == "status":
                _set_status(context, f"frame {task.frame}: {message.text}")
            elif message.kind == "done":
                job_runner.finish(job)
                self._job = self._task = None
                self._complete(context, run, task, message.outcome)
                return
            elif message.kind == "error" and message.error is not None:
                job_runner.finish(job)
                self._job = self._task = None
                raise message.error
        if not job.alive() and job.messages.empty():
            raise RuntimeError("the frame's worker stopped")

    def _complete(self, context: bpy.types.Context, run: FrameRun, task: FrameTask, outcome: Any) -> None:
        entry = run.complete(task, outcome)
        path = os.path.join(run.output_dir, entry["file"])
        if run.last_output is not None:
            frame_outputs.show_frame(run.last_output)
        self.report({"INFO"}, f"Scenecast: frame {task.frame} → {path}")

    def _stop_modal(self, context: bpy.types.Context, status: str) -> None:
        _active.pop("run", None)
        self._end(context, status)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the modal (file loaded, window closed): stop the job, close the run."""
        self.stop()
        if self._run is not None:
            self._run.close("cancelled", "Blender ended the operator")
        self._stop_modal(context, "cancelled")


class SCENECAST_OT_cancel_frames(bpy.types.Operator):
    """Stop Stylize Frames (the frame in progress is cancelled on the server; finished frames stay)"""

    bl_idname = "scenecast.cancel_frames"
    bl_label = "Cancel Frames"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return active_run() is not None

    def execute(self, context: bpy.types.Context) -> set[Result]:
        op = active_run()
        if op is None:
            self.report({"WARNING"}, "Stylize Frames is not running")
            return {"CANCELLED"}
        op.stop()
        context.window_manager.scenecast_status = "cancelling frames…"  # type: ignore[attr-defined]
        return {"FINISHED"}


def stop_active() -> None:
    """On unregister: ask a running Stylize Frames to stop."""
    op = active_run()
    if op is not None:
        op.stop()


classes = (SCENECAST_OT_stylize_frame, SCENECAST_OT_stylize_frames, SCENECAST_OT_cancel_frames)
