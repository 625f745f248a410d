"""A base for operators whose work is several backend jobs (``core.job_chain`` generators).

In the UI the operator is modal: each job of the chain runs in a worker thread (``job_runner``), the
timer brings its events back, and when a job is done its outcome is sent into the generator on the
main thread, which does its Blender work (project an image, update a texture) and hands back the
next job. Esc or the Cancel button cancels the running job on the server and closes the generator
(its clean-up runs). In background mode (``blender -b``) the same generator runs blocking through
``job_chain.run_blocking``, so scripts drive the code users click.

Subclasses implement :meth:`make_steps` (build the generator; raise ``ValueError``/``ScenecastError``
for bad settings, before anything is changed) and :meth:`chain_done` (report the result).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

import bpy

from ..core import backend_process, png
from ..core.errors import ScenecastError
from ..core.job_chain import JobSteps, run_blocking
from ..core.remote_job import JobFailed, JobRequest
from . import job_runner
from .operators import _set_status, error_text, update_preview

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems as Result
else:
    Result = str

_TIMER_SECONDS = 0.1
#: Errors a chain reports to the user (everything else is a bug and keeps its traceback).
USER_ERRORS = (ScenecastError, ValueError, RuntimeError, OSError, backend_process.BackendProcessError)


class ChainOperator(bpy.types.Operator):
    """Runs a job chain: modal in the UI, blocking in background mode."""

    bl_options = {"REGISTER", "UNDO"}
    _timer: Any = None
    _job: job_runner.RunningJob | None = None
    _steps: JobSteps[Any] | None = None

    # -- for subclasses -------------------------------------------------------------------------
    def make_steps(self, context: bpy.types.Context) -> JobSteps[Any]:
        raise NotImplementedError

    def chain_done(self, context: bpy.types.Context, result: Any) -> None:
        self.report({"INFO"}, "Scenecast: done")

    def status(self, context: bpy.types.Context, text: str, progress: float | None = None) -> None:
        """Show ``text`` in the status bar (UI) or print it (background); generators may call it."""
        if bpy.app.background or context.window is None:
            print(f"Scenecast: {text}", flush=True)
        else:
            _set_status(context, text, progress)

    # -- operator protocol ----------------------------------------------------------------------
    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and job_runner.active() is None

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        return self.execute(context)

    def execute(self, context: bpy.types.Context) -> set[Result]:
        try:
            steps = self.make_steps(context)
        except USER_ERRORS as exc:
            self.report({"ERROR"}, error_text(exc))
            return {"CANCELLED"}
        if bpy.app.background or context.window is None:
            return self._run_blocking(context, steps)
        return self._start_modal(context, steps)

    def _run_blocking(self, context: bpy.types.Context, steps: JobSteps[Any]) -> set[Result]:
        def on_event(event: Any) -> None:
            if event.type == "step" and event.data.get("step") == event.data.get("steps"):
                print(f"Scenecast: {event.data.get('steps')} steps done", flush=True)

        try:
            result = run_blocking(steps, on_event=on_event, on_status=lambda text: self.status(context, text))
        except USER_ERRORS as exc:
            cancelled = isinstance(exc, JobFailed) and exc.status == "cancelled"
            self.report({"WARNING"} if cancelled else {"ERROR"}, error_text(exc))
            return {"CANCELLED"}
        self.chain_done(context, result)
        return {"FINISHED"}

    def _start_modal(self, context: bpy.types.Context, steps: JobSteps[Any]) -> set[Result]:
        self._steps = steps
        try:
            first = next(steps)
        except StopIteration as done:
            self.chain_done(context, done.value)
            return {"FINISHED"}
        except USER_ERRORS as exc:
            self.report({"ERROR"}, error_text(exc))
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(_TIMER_SECONDS, window=context.window)
        wm.progress_begin(0, 1000)
        wm.modal_handler_add(self)
        self._start_job(first)
        return {"RUNNING_MODAL"}

    def _start_job(self, request: JobRequest) -> None:
        if self._job is not None:
            job_runner.finish(self._job)
        self._job = job_runner.start(request)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        try:
            return self._modal(context, event)
        except Exception as exc:  # noqa: BLE001 - a modal handler that raises is dropped: end cleanly
            self._abort()
            self.report({"ERROR"}, f"Scenecast: {error_text(exc)}")
            self._finish(context, f"failed: {error_text(exc)}")
            return {"CANCELLED"}

    def _modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        job, steps = self._job, self._steps
        if job is None or steps is None:
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
            elif message.kind in ("done", "error"):
                try:
                    if message.kind == "done":
                        request = steps.send(message.outcome)  # type: ignore[arg-type]
                    else:
                        assert message.error is not None
                        request = steps.throw(message.error)
                except StopIteration as done:
                    self._finish(context, "done")
                    self.chain_done(context, done.value)
                    return {"FINISHED"}
                except USER_ERRORS as exc:
                    cancelled = isinstance(exc, JobFailed) and exc.status == "cancelled"
                    self.report({"WARNING"} if cancelled else {"ERROR"}, error_text(exc))
                    self._finish(context, "cancelled" if cancelled else f"failed: {error_text(exc)}")
                    return {"CANCELLED"}
                if job.cancel.is_set():  # Esc came while the generator worked: stop before the next job
                    steps.close()
                    self.report({"WARNING"}, "Scenecast: cancelled")
                    self._finish(context, "cancelled")
                    return {"CANCELLED"}
                self._start_job(request)
                return {"RUNNING_MODAL"}
        if not job.alive() and job.messages.empty():
            self._abort()
            self._finish(context, "failed: the job's worker stopped")
            return {"CANCELLED"}
        return {"PASS_THROUGH"}

    def _on_event(self, context: bpy.types.Context, event: Any) -> None:
        data = event.data or {}
        if event.type == "step":
            steps = max(1, int(data.get("steps") or 1))
            context.window_manager.progress_update(int(1000 * int(data.get("step") or 0) / steps))
        elif event.type == "preview" and event.image:
            try:
                update_preview(png.decode_png(event.image))
            except (ValueError, zlib.error):
                pass

    def _abort(self) -> None:
        if self._job is not None:
            self._job.cancel.set()
        if self._steps is not None:
            self._steps.close()

    def _finish(self, context: bpy.types.Context, status: str) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if self._job is not None:
            job_runner.finish(self._job)
        self._job, self._steps = None, None
        _set_status(context, "")
        wm.scenecast_status = status  # type: ignore[attr-defined]

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the modal (file loaded, window closed): cancel the job and clean up."""
        self._abort()
        self._finish(context, "cancelled")
