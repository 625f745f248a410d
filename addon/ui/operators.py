"""Operators: generate, cancel, extract passes, start/stop the local backend, open its log.

Generate is modal in the UI: passes are extracted on the main thread, the job runs in a worker thread
(``job_runner``), and a timer brings its events back to the main thread — progress in the status bar
and the window manager's progress, previews into the "Scenecast Preview" image. Esc or the Cancel
button cancels the job on the server. In background mode (``blender -b``, ``bpy.app.background``) the
same operator blocks until the job is done, so scripts and farms drive the code users click.
Every error report says what to do.
"""

from __future__ import annotations

import os
import threading
import zlib
from typing import TYPE_CHECKING, Any

import bpy

from .. import api
from ..blender.image_pixels import image_from_array, set_pixels, show_in_image_editors
from ..core import backend_process, png
from ..core.errors import ScenecastError
from ..core.remote_job import JobFailed
from . import job_runner, preferences

if TYPE_CHECKING:  # the stubs' name for {"FINISHED", "CANCELLED", ...}
    from bpy.stub_internal.rna_enums import OperatorReturnItems as Result
else:
    Result = str

PREVIEW_IMAGE = "Scenecast Preview"
_TIMER_SECONDS = 0.1


def error_text(exc: BaseException) -> str:
    """One line for a report: what went wrong and, for our errors, the fix."""
    if isinstance(exc, ScenecastError):
        fix = getattr(exc, "fix", None)
        return f"{exc.message}. Fix: {fix}" if fix else str(exc.message)
    if isinstance(exc, backend_process.BackendProcessError):
        return f"{exc.message}. Fix: {exc.fix}"
    return str(exc)


def _was_cancelled(exc: BaseException) -> bool:
    return isinstance(exc, JobFailed) and exc.status == "cancelled"


def _scene(context: bpy.types.Context) -> bpy.types.Scene:
    scene = context.scene
    if scene is None:  # poll() keeps this from happening in the UI
        raise ValueError("no active scene: run this from a window showing a scene")
    return scene


def _set_status(context: bpy.types.Context, text: str, progress: float | None = None) -> None:
    wm = context.window_manager
    wm.scenecast_status = text  # type: ignore[attr-defined]
    if progress is not None:
        wm.scenecast_progress = max(0.0, min(1.0, progress))  # type: ignore[attr-defined]
    if context.workspace is not None:
        context.workspace.status_text_set(f"Scenecast: {text}  (Esc to cancel)" if text else None)
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


class SCENECAST_OT_generate(bpy.types.Operator):
    """Generate images from the scene's passes with the backend (Esc cancels)"""

    bl_idname = "scenecast.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER", "UNDO"}

    _timer: Any = None
    _job: job_runner.RunningJob | None = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and job_runner.active() is None

    def execute(self, context: bpy.types.Context) -> set[Result]:
        if bpy.app.background or context.window is None:
            return self._run_blocking(context)
        return self._start_modal(context)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        return self.execute(context)

    def _run_blocking(self, context: bpy.types.Context) -> set[Result]:
        def on_event(event: Any) -> None:
            if event.type == "step":
                print(f"Scenecast: step {event.data.get('step')}/{event.data.get('steps')}", flush=True)

        try:
            request = api.prepare(_scene(context))
            outcome = api.run_job(request, on_event=on_event, on_status=lambda text: print(f"Scenecast: {text}"))
            images = api.load_results(outcome)
        except (ScenecastError, ValueError, RuntimeError, OSError, backend_process.BackendProcessError) as exc:
            self.report({"WARNING"} if _was_cancelled(exc) else {"ERROR"}, error_text(exc))
            return {"CANCELLED"}
        for note in outcome.notes:
            self.report({"WARNING"}, note)
        self.report({"INFO"}, f"Scenecast: {len(images)} image(s) saved in {os.path.dirname(outcome.files[0])}")
        return {"FINISHED"}

    def _start_modal(self, context: bpy.types.Context) -> set[Result]:
        try:
            request = api.prepare(_scene(context))
            self._job = job_runner.start(request)
        except (ScenecastError, ValueError, RuntimeError, OSError, backend_process.BackendProcessError) as exc:
            self.report({"ERROR"}, error_text(exc))
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(_TIMER_SECONDS, window=context.window)
        wm.progress_begin(0, 1000)
        wm.modal_handler_add(self)
        _set_status(context, "connecting…", 0.0)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        # Blender drops a modal handler that raises without calling cancel(): the timer, progress and
        # status would stay and the server job would run on. So every failure ends here, cleanly.
        try:
            return self._modal(context, event)
        except Exception as exc:  # noqa: BLE001
            if self._job is not None:
                self._job.cancel.set()
            self.report({"ERROR"}, f"Scenecast: {exc}. The job was cancelled; generate again")
            self._finish(context, f"failed: {exc}")
            return {"CANCELLED"}

    def _modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        job = self._job
        if job is None:
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel.set()
            _set_status(context, "cancelling…")
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        for message in job.drain():
            if message.kind == "event":
                self._on_event(context, message.event)
            elif message.kind == "status":
                _set_status(context, message.text)
            elif message.kind == "done" and message.outcome is not None:
                outcome = message.outcome
                try:
                    images = api.load_results(outcome)
                except (RuntimeError, OSError) as exc:  # a result file Blender cannot read
                    self.report({"ERROR"}, f"{exc}. Fix: the files are in {os.path.dirname(outcome.files[0])}")
                    self._finish(context, f"failed: {exc}")
                    return {"CANCELLED"}
                for note in outcome.notes:
                    self.report({"WARNING"}, note)
                if images:
                    show_in_image_editors(images[0])
                self.report({"INFO"}, f"Scenecast: {len(images)} image(s) saved in {os.path.dirname(outcome.files[0])}")
                self._finish(context, f"done: {len(images)} image(s), job {outcome.job_id}")
                return {"FINISHED"}
            elif message.kind == "error" and message.error is not None:
                if _was_cancelled(message.error):
                    self.report({"WARNING"}, "Scenecast: job cancelled")
                    self._finish(context, "cancelled")
                else:
                    self.report({"ERROR"}, error_text(message.error))
                    self._finish(context, f"failed: {error_text(message.error)}")
                return {"CANCELLED"}
        if not job.alive() and job.messages.empty():  # the worker ended without a word: never expected
            self._finish(context, "failed: the job's worker stopped")
            return {"CANCELLED"}
        return {"PASS_THROUGH"}

    def _on_event(self, context: bpy.types.Context, event: Any) -> None:
        data = event.data or {}
        if event.type == "step":
            steps = max(1, int(data.get("steps") or 1))
            step = int(data.get("step") or 0)
            context.window_manager.progress_update(int(1000 * step / steps))
            _set_status(context, f"step {step}/{steps}", step / steps)
        elif event.type == "queued":
            _set_status(context, f"queued (position {data.get('position')})")
        elif event.type == "download":
            done, total = data.get("done") or 0, data.get("total")
            size = f"{done / 1e6:.0f}/{total / 1e6:.0f} MB" if total else f"{done / 1e6:.0f} MB"
            _set_status(context, f"downloading {data.get('model')}: {size}")
        elif event.type == "stage":
            _set_status(context, f"stage {int(data.get('index') or 0) + 1}: {data.get('stage')}")
        elif event.type == "preview" and event.image:
            try:
                update_preview(png.decode_png(event.image))
            except (ValueError, zlib.error) as exc:  # a bad preview is not worth stopping the job for
                print(f"Scenecast: preview skipped: {exc}")

    def _finish(self, context: bpy.types.Context, status: str) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if self._job is not None:
            job_runner.finish(self._job)
        _set_status(context, "")
        wm.scenecast_status = status  # type: ignore[attr-defined]

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the modal (file loaded, window closed): cancel the job on the server too."""
        if self._job is not None:
            self._job.cancel.set()
        self._finish(context, "cancelled")


def update_preview(rgb: Any) -> bpy.types.Image:
    """Show a preview (uint8, row 0 top) in the "Scenecast Preview" image and in open Image Editors."""
    image = bpy.data.images.get(PREVIEW_IMAGE)
    if image is None:
        image = bpy.data.images.new(PREVIEW_IMAGE, rgb.shape[1], rgb.shape[0], alpha=False)
    if rgb.ndim == 2:
        rgb = rgb[:, :, None].repeat(3, axis=2)
    set_pixels(image, rgb[..., :3] if rgb.dtype.name == "uint8" else (rgb >> 8).astype("uint8")[..., :3])
    show_in_image_editors(image)
    return image


class SCENECAST_OT_cancel(bpy.types.Operator):
    """Cancel the running Scenecast job (on the server too)"""

    bl_idname = "scenecast.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return job_runner.active() is not None

    def execute(self, context: bpy.types.Context) -> set[Result]:
        if not job_runner.cancel_active():
            self.report({"WARNING"}, "No Scenecast job is running")
            return {"CANCELLED"}
        context.window_manager.scenecast_status = "cancelling…"  # type: ignore[attr-defined]
        return {"FINISHED"}


class SCENECAST_OT_extract_passes(bpy.types.Operator):
    """Render the scene's control images (depth, normal, edges, segmentation) into Blender images"""

    bl_idname = "scenecast.extract_passes"
    bl_label = "Extract Passes"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and context.scene.camera is not None

    def execute(self, context: bpy.types.Context) -> set[Result]:
        scene = _scene(context)
        s = scene.scenecast  # type: ignore[attr-defined]
        try:
            passes = api.extract_passes(scene, resolution=(s.width, s.height))
        except (ValueError, RuntimeError) as exc:
            self.report({"ERROR"}, f"{exc}")
            return {"CANCELLED"}
        except OSError as exc:  # the temporary EXR could not be written or read
            self.report({"ERROR"}, f"Scenecast: passes could not be written or read ({exc}). Fix: free disk"
                                   " space in /dev/shm or the temp folder, or check its permissions")
            return {"CANCELLED"}
        first = None
        for name, arr in passes.control.items():
            image = image_from_array(f"Scenecast {name}", arr, non_color=True)
            first = first or image
        if first is not None and context.window is not None:
            show_in_image_editors(first)
        self.report({"INFO"}, f"Scenecast: {', '.join(passes.control)} written as 'Scenecast <pass>' images")
        return {"FINISHED"}


_starting: dict[str, Any] = {}


class SCENECAST_OT_start_backend(bpy.types.Operator):
    """Start the local backend with the Python and directory set in the preferences"""

    bl_idname = "scenecast.start_backend"
    bl_label = "Start Backend"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[Result]:
        prefs = preferences.settings(context)

        def start() -> backend_process.LocalBackend | None:
            return backend_process.ensure_backend(
                prefs.server, python=prefs.backend_python, backend_dir=prefs.backend_dir,
                token=prefs.token, log_path=prefs.log_path, models_folders=prefs.models_folders,
                offline=not getattr(bpy.app, "online_access", True),
            )

        if bpy.app.background:
            try:
                backend = start()
            except backend_process.BackendProcessError as exc:
                self.report({"ERROR"}, error_text(exc))
                return {"CANCELLED"}
            self.report({"INFO"}, "Scenecast backend started" if backend else f"A backend already answers at {prefs.server}")
            return {"FINISHED"}
        if _starting.get("thread") is not None and _starting["thread"].is_alive():
            self.report({"WARNING"}, "The backend is already starting")
            return {"CANCELLED"}
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["backend"] = start()
            except backend_process.BackendProcessError as exc:
                result["error"] = exc

        thread = threading.Thread(target=work, name="scenecast-start-backend", daemon=True)
        _starting["thread"] = thread
        thread.start()
        context.window_manager.scenecast_status = "starting the local backend…"  # type: ignore[attr-defined]

        def poll() -> float | None:
            if thread.is_alive():
                return 0.25
            wm = bpy.context.window_manager
            if "error" in result:
                wm.scenecast_status = f"backend failed to start: {error_text(result['error'])}"  # type: ignore[attr-defined]
            else:
                wm.scenecast_status = f"backend ready at {prefs.server}"  # type: ignore[attr-defined]
            for window in wm.windows:
                for area in window.screen.areas:
                    area.tag_redraw()
            return None

        _starting["poll"] = poll
        bpy.app.timers.register(poll, first_interval=0.25)
        self.report({"INFO"}, f"Starting the local backend (log: {prefs.log_path})")
        return {"FINISHED"}


def forget_start() -> None:
    """On unregister: drop the start's poll timer and let a start in flight finish, so that
    ``backend_process.stop_started`` sees (and stops) the backend it launches."""
    poll = _starting.pop("poll", None)
    if poll is not None and bpy.app.timers.is_registered(poll):
        bpy.app.timers.unregister(poll)
    thread = _starting.pop("thread", None)
    if thread is not None:
        thread.join(timeout=90)


class SCENECAST_OT_stop_backend(bpy.types.Operator):
    """Stop the local backend, if Scenecast started it (a backend you started yourself is left alone)"""

    bl_idname = "scenecast.stop_backend"
    bl_label = "Stop Backend"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[Result]:
        prefs = preferences.settings(context)
        backend = backend_process.started_backend(prefs.server)
        if backend is None:
            self.report({"WARNING"}, f"Scenecast did not start the backend at {prefs.server}; it is left running")
            return {"CANCELLED"}
        backend.stop()
        context.window_manager.scenecast_status = "backend stopped"  # type: ignore[attr-defined]
        self.report({"INFO"}, "Scenecast backend stopped")
        return {"FINISHED"}


class SCENECAST_OT_open_backend_log(bpy.types.Operator):
    """Open the local backend's log file"""

    bl_idname = "scenecast.open_backend_log"
    bl_label = "Open Backend Log"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[Result]:
        path = backend_process.last_log_path()
        if not os.path.exists(path):
            path = preferences.settings(context).log_path
        if not os.path.exists(path):
            self.report({"ERROR"}, f"No backend log yet at {path}: Scenecast has not started a backend here")
            return {"CANCELLED"}
        bpy.ops.wm.path_open(filepath=path)
        return {"FINISHED"}


class SCENECAST_OT_unit_add(bpy.types.Operator):
    """Add a ControlNet unit"""

    bl_idname = "scenecast.unit_add"
    bl_label = "Add Unit"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[Result]:
        s = context.scene.scenecast  # type: ignore[attr-defined]
        used = {u.type for u in s.units}
        unit = s.units.add()
        unit.type = next((t for t in ("depth", "edges", "normal", "segmentation") if t not in used), "depth")
        s.active_unit = len(s.units) - 1
        return {"FINISHED"}


class SCENECAST_OT_unit_remove(bpy.types.Operator):
    """Remove the selected ControlNet unit"""

    bl_idname = "scenecast.unit_remove"
    bl_label = "Remove Unit"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        s = context.scene.scenecast  # type: ignore[attr-defined]
        return 0 <= s.active_unit < len(s.units)

    def execute(self, context: bpy.types.Context) -> set[Result]:
        s = context.scene.scenecast  # type: ignore[attr-defined]
        s.units.remove(s.active_unit)
        s.active_unit = min(s.active_unit, len(s.units) - 1)
        return {"FINISHED"}


classes = (
    SCENECAST_OT_generate,
    SCENECAST_OT_cancel,
    SCENECAST_OT_extract_passes,
    SCENECAST_OT_start_backend,
    SCENECAST_OT_stop_backend,
    SCENECAST_OT_open_backend_log,
    SCENECAST_OT_unit_add,
    SCENECAST_OT_unit_remove,
)
