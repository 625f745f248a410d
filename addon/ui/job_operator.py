"""The one job operator: runs any feature (``features.base.FeatureRun``) modally in the UI, blocking headless.

Everything with logic lives in :class:`JobDriver`, which a test drives without a window: feed it
:meth:`~JobDriver.tick` (a timer tick), :meth:`~JobDriver.escape` (Esc) and, through the worker's
queue, job events, outcomes and errors; it answers with its ``status``/``fraction``/``preview`` and,
when the run ends, an :class:`Ending`. :class:`JobOperator` is the thin Blender shell around it
(timer, status bar, progress, reports, undo step); a feature's operator subclasses it, builds the
run in :meth:`~JobOperator.make_run` and reports the result in :meth:`~JobOperator.report_result`.

One run at a time: :func:`active` is the registry, :func:`can_start` the poll guard every job
operator and panel uses. Each tick first checks that the run's scene and objects still exist (by
name: deleted, undone away or a file loaded stops the run with a message saying so). When a run
ends — finished, failed or cancelled — one undo step named after it is pushed, so one Ctrl-Z
undoes exactly that run; Ctrl-Z while it runs is refused (it would take the run's data away).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import bpy

from ..blender.held import DataGone
from ..blender.image_pixels import set_pixels, show_in_image_editors
from ..core import backend_process, png
from ..core.errors import ScenecastError
from ..core.remote_job import JobFailed, JobOutcome, JobRequest, run_job
from ..features.base import FeatureRun, Progress, run_blocking
from . import job_runner

if TYPE_CHECKING:  # the stubs' name for {"FINISHED", "CANCELLED", ...}
    from bpy.stub_internal.rna_enums import OperatorReturnItems as Result
else:
    Result = str

TIMER_SECONDS = 0.1
PREVIEW_IMAGE = "Scenecast Preview"
#: Errors a run reports to the user (everything else is a bug: reported, the run still ends cleanly).
USER_ERRORS = (ScenecastError, ValueError, RuntimeError, OSError, backend_process.BackendProcessError)


def error_text(exc: BaseException) -> str:
    """One line for a report: what went wrong and, for our errors, the fix."""
    if isinstance(exc, ScenecastError):
        fix = getattr(exc, "fix", None)
        return f"{exc.message}. Fix: {fix}" if fix else str(exc.message)
    if isinstance(exc, backend_process.BackendProcessError):
        return f"{exc.message}. Fix: {exc.fix}"
    return str(exc)


def cancelled(exc: BaseException) -> bool:
    return isinstance(exc, JobFailed) and exc.status == "cancelled"


# ------------------------------------------------------------------------------------------ status


def event_text(event: Any) -> str | None:
    """A job event as status text ("queued (position 2)", "downloading …: 10/200 MB", "step 5/20",
    "stage 2: inpaint"); None for events that change no status (previews, done)."""
    data = event.data or {}
    if event.type == "step":
        return f"step {int(data.get('step') or 0)}/{max(1, int(data.get('steps') or 1))}"
    if event.type == "queued":
        return f"queued (position {data.get('position')})"
    if event.type == "download":
        done, total = data.get("done") or 0, data.get("total")
        size = f"{done / 1e6:.0f}/{total / 1e6:.0f} MB" if total else f"{done / 1e6:.0f} MB"
        return f"downloading {data.get('model')}: {size}"
    if event.type == "stage":
        return f"stage {int(data.get('index') or 0) + 1}: {data.get('stage')}"
    return None


def status_text(progress: Progress, detail: str = "") -> str:
    """Where the run is ("view 2/6", "frame 3/24") and what happens now ("step 5/20", "queued …")."""
    where = f"{progress.unit} {progress.index + 1}/{progress.count}" if progress.unit else ""
    return ": ".join(p for p in (where, detail or progress.phase) if p)


# ------------------------------------------------------------------------------------------ driver


@dataclass
class Ending:
    """How a run ended: ``finished`` (else cancelled or failed), the status line, the result, reports."""

    finished: bool
    status: str
    result: Any = None
    reports: list[tuple[str, str]] = field(default_factory=list)  # (level, text)


class JobDriver:
    """A feature run driven one tick at a time (see the module doc). Main thread only."""

    def __init__(self, run: FeatureRun[Any], start_job: Callable[[JobRequest], job_runner.RunningJob] = job_runner.start):
        self.run, self.start_job = run, start_job
        self.job: job_runner.RunningJob | None = None
        self.detail = ""  # the job's latest event as text
        self.within = 0.0  # part of the current view/frame done (steps)
        self.preview: Any = None  # the latest preview (H, W, 3) uint8, until the shell shows it
        self.cancelling = False
        self.ending: Ending | None = None

    @property
    def status(self) -> str:
        return "cancelling…" if self.cancelling else status_text(self.run.progress, self.detail)

    @property
    def fraction(self) -> float:
        return self.run.progress.fraction(self.within)

    def begin(self) -> Ending | None:
        """Run the feature up to its first job and start that job; an Ending if it needs none or fails."""
        try:
            request = next(self.run.steps)
        except StopIteration as done:
            return self._end(Ending(True, "done", done.value))
        except USER_ERRORS as exc:
            return self._end(Ending(False, f"failed: {error_text(exc)}", reports=[("ERROR", error_text(exc))]))
        self._start(request)
        return None

    def escape(self) -> None:
        """Esc / Cancel: cancel the job on the server; the feature stops when the job says so."""
        self.cancelling = True
        if self.job is not None:
            self.job.cancel.set()

    def tick(self) -> Ending | None:
        """One timer tick: check the held data, take the job's messages, advance the feature."""
        if self.ending is not None:
            return self.ending
        try:
            self.run.check()
        except DataGone as exc:
            return self.abort(exc)
        job = self.job
        assert job is not None, "tick() before begin()"
        for message in job.drain():
            if message.kind == "event":
                self._on_event(message.event)
            elif message.kind == "status":
                self.detail = message.text
            elif message.kind == "done":
                return self._advance(outcome=message.outcome)
            elif message.kind == "error" and message.error is not None:
                return self._advance(error=message.error)
        if not job.alive() and job.messages.empty():  # the worker ended without a word: never expected
            return self.abort(RuntimeError("the job's worker stopped without an answer; run it again"))
        return None

    def abort(self, reason: BaseException) -> Ending:
        """Stop now (data gone, Blender ended the operator, a bug): cancel the job, close the feature."""
        if self.ending is not None:
            return self.ending
        if self.job is not None:
            self.job.cancel.set()
        try:
            self.run.steps.close()
        except USER_ERRORS as exc:  # its clean-up failed too (e.g. the data it restores is gone)
            print(f"Scenecast: clean-up after {self.run.label} stopped: {error_text(exc)}")
        text = error_text(reason)
        return self._end(Ending(False, f"failed: {text}", reports=[("ERROR", text)]))

    def _on_event(self, event: Any) -> None:
        text = event_text(event)
        if text is not None:
            self.detail = text
        data = event.data or {}
        if event.type == "step":
            self.within = int(data.get("step") or 0) / max(1, int(data.get("steps") or 1))
        elif event.type == "preview" and event.image:
            try:
                self.preview = png.decode_png(event.image)
            except (ValueError, zlib.error) as exc:  # a bad preview is not worth stopping the run for
                print(f"Scenecast: preview skipped: {exc}")

    def _advance(self, outcome: JobOutcome | None = None, error: BaseException | None = None) -> Ending | None:
        steps = self.run.steps
        try:
            request = steps.throw(error) if error is not None else steps.send(outcome)  # type: ignore[arg-type]
        except StopIteration as done:
            return self._end(Ending(True, "done", done.value))
        except USER_ERRORS as exc:
            if cancelled(exc):
                return self._end(Ending(False, "cancelled", reports=[("WARNING", f"Scenecast: {self.run.label} cancelled")]))
            return self._end(Ending(False, f"failed: {error_text(exc)}", reports=[("ERROR", error_text(exc))]))
        if self.cancelling:  # Esc came while the feature worked: stop before the next job
            steps.close()
            return self._end(Ending(False, "cancelled", reports=[("WARNING", f"Scenecast: {self.run.label} cancelled")]))
        self._start(request)
        return None

    def _start(self, request: JobRequest) -> None:
        self.detail, self.within = "", 0.0
        self.job = self.start_job(request)

    def _end(self, ending: Ending) -> Ending:
        ending.reports[:0] = [("WARNING", note) for note in self.run.notes]
        self.ending = ending
        return ending


# ------------------------------------------------------------------------------------------ registry

_active: list[JobDriver] = []


def active() -> JobDriver | None:
    """The run the UI drives now, if any."""
    return _active[0] if _active else None


def can_start(context: bpy.types.Context) -> bool:
    """The one poll guard: a scene to work on, and no run going."""
    return why_not(context) is None


#: Why a run cannot start while another runs (poll message and the error of a second start).
ALREADY_RUNNING = "Scenecast is already running: wait for it or cancel it (Esc) first"


def why_not(context: bpy.types.Context) -> str | None:
    """Why no run can start now (the poll guard's reason), or None."""
    if context.scene is None:
        return "no scene: run this from a window showing a scene"
    if _active:
        return ALREADY_RUNNING
    return None


def poll_with_reason(cls: Any, reason: Any) -> bool:
    """For ``poll``: False with ``reason`` (text or error) shown on the greyed-out button, else True."""
    if reason is None:
        return True
    cls.poll_message_set(str(reason))
    return False


def cancel_active() -> bool:
    """Ask the running run to stop (its job is cancelled on the server too); False when none runs."""
    driver = active()
    if driver is None:
        return False
    driver.escape()
    return True


# ------------------------------------------------------------------------------------------ the shell


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


def set_status(context: bpy.types.Context, text: str, progress: float | None = None) -> None:
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


def push_undo(label: str) -> None:
    """One undo step holding the whole run (finished or not): Ctrl-Z then undoes exactly it."""
    try:
        bpy.ops.ed.undo_push(message=f"Scenecast {label}")
    except RuntimeError as exc:  # no undo stack (e.g. undo off in the preferences)
        print(f"Scenecast: no undo step for {label}: {exc}")


class JobOperator(bpy.types.Operator):
    """Base of every operator that runs a feature: modal in the UI, blocking headless (see the module doc)."""

    bl_options = {"REGISTER"}  # the undo step is pushed by the driver when the run ends (see push_undo)
    _timer: Any = None

    def make_run(self, context: bpy.types.Context) -> FeatureRun[Any]:
        """Build the feature's run; raise ``ValueError``/``ScenecastError`` before changing anything."""
        raise NotImplementedError

    def report_result(self, context: bpy.types.Context, result: Any) -> None:
        self.report({"INFO"}, "Scenecast: done")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return poll_with_reason(cls, why_not(context))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        return self.execute(context)

    def execute(self, context: bpy.types.Context) -> set[Result]:
        if _active:
            self.report({"ERROR"}, ALREADY_RUNNING)
            return {"CANCELLED"}
        try:
            run = self.make_run(context)
        except USER_ERRORS as exc:
            self.report({"ERROR"}, error_text(exc))
            return {"CANCELLED"}
        if bpy.app.background or context.window is None:
            return self._blocking(context, run)
        driver = JobDriver(run)
        _active.append(driver)
        ending = driver.begin()
        if ending is not None:
            return self._finish(context, ending)
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_SECONDS, window=context.window)
        wm.progress_begin(0, 1000)
        wm.modal_handler_add(self)
        set_status(context, f"{run.label}: starting…", 0.0)
        return {"RUNNING_MODAL"}

    def _blocking(self, context: bpy.types.Context, run: FeatureRun[Any]) -> set[Result]:
        def on_event(event: Any) -> None:
            if event.type == "step" and event.data.get("step") == event.data.get("steps"):
                print(f"Scenecast: {status_text(run.progress, event_text(event) or '')}", flush=True)

        run.progress.listeners.append(lambda p: print(f"Scenecast: {status_text(p)}", flush=True))
        _active.append(JobDriver(run))  # the registry holds it, so nothing else starts meanwhile
        try:
            result = run_blocking(run, on_event=on_event, on_status=lambda text: print(f"Scenecast: {text}"),
                                  runner=run_job)
            ending = Ending(True, "done", result, [("WARNING", n) for n in run.notes])
        except USER_ERRORS as exc:
            level = "WARNING" if cancelled(exc) else "ERROR"
            ending = Ending(False, "cancelled" if cancelled(exc) else f"failed: {error_text(exc)}",
                            reports=[(level, error_text(exc))])
        return self._finish(context, ending)

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        driver = active()
        if driver is None:
            return {"CANCELLED"}
        try:
            if event.type == "ESC" and event.value == "PRESS":
                driver.escape()
                set_status(context, driver.status)
                return {"RUNNING_MODAL"}
            if event.type == "Z" and event.value == "PRESS" and (event.ctrl or event.oskey):
                self.report({"WARNING"}, "Scenecast: undo waits until the run ends (Esc cancels it)")
                return {"RUNNING_MODAL"}
            if event.type != "TIMER":
                return {"PASS_THROUGH"}
            ending = driver.tick()
            if driver.preview is not None:
                update_preview(driver.preview)
                driver.preview = None
            if ending is not None:
                return self._finish(context, ending)
            set_status(context, driver.status, driver.fraction)
            context.window_manager.progress_update(int(1000 * driver.fraction))
        except Exception as exc:  # noqa: BLE001 - Blender drops a modal that raises: end cleanly instead
            return self._finish(context, driver.abort(exc))
        return {"PASS_THROUGH"}

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the modal (file loaded, window closed): cancel the job and clean up."""
        driver = active()
        if driver is not None:
            self._finish(context, driver.abort(JobFailed("Blender ended the operator", None, status="cancelled")))

    def _finish(self, context: bpy.types.Context, ending: Ending) -> set[Result]:
        driver = active()
        label = driver.run.label if driver is not None else self.bl_label
        _active.clear()
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
            wm.progress_end()
            set_status(context, "")
        wm.scenecast_status = ending.status  # type: ignore[attr-defined]
        for level, text in ending.reports:
            self.report({level}, text)  # type: ignore[arg-type]
        if ending.finished:
            self.report_result(context, ending.result)
        push_undo(label)
        return {"FINISHED"} if ending.finished else {"CANCELLED"}
