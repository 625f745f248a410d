"""Preferences buttons for the backend's own environment: Install Backend, and Stop Left Backend.

Install Backend shows its plan (torch build, where packages come from, the target folder) in a dialog
before anything starts, then runs :mod:`..core.backend_install` on a worker thread: progress in the
status bar, Esc cancels, and on success Backend Python is filled in. In background mode (``blender
-b``) it blocks. The venv goes into the extension's user data folder, never into Blender's Python.

Stop Left Backend stops a backend an earlier Blender started and left running (after a crash), found
through its owner file beside the backend log.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Literal

import bpy

from ...blender import settings as blender_settings
from ...core import backend_install, backend_owner
from ...core.errors import ScenecastError


TICK_S = 0.2
Result = Literal["RUNNING_MODAL", "CANCELLED", "FINISHED", "PASS_THROUGH", "INTERFACE"]


def venv_dir() -> str:
    """The backend's venv: the extension's user folder when installed, else the user cache."""
    try:
        return bpy.utils.extension_path_user(blender_settings.ADDON_ID, path="backend-venv", create=False)
    except (ValueError, AttributeError, OSError):  # not installed as an extension
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "scenecast", "backend-venv")


def _plan(context: bpy.types.Context) -> backend_install.InstallPlan:
    prefs = context.preferences.addons[blender_settings.ADDON_ID].preferences
    wheels = bpy.path.abspath(prefs.backend_wheels) if prefs.backend_wheels else ""
    return backend_install.make_plan(venv_dir(), allow_online=getattr(bpy.app, "online_access", True),
                                     find_links=[wheels] if wheels else [])


def _message(exc: ScenecastError) -> str:
    return f"{exc.message} — {exc.fix}" if exc.fix else exc.message


class SCENECAST_OT_install_backend(bpy.types.Operator):
    """Make the backend's own Python environment (PyTorch for this machine + the Scenecast backend) in
    Blender's user data folder and set Backend Python to it"""

    bl_idname = "scenecast.install_backend"
    bl_label = "Install Backend"
    bl_options = {"REGISTER"}

    _worker: threading.Thread | None = None
    _events: queue.Queue | None = None
    _cancel: threading.Event | None = None
    _timer: Any = None
    _result: dict[str, Any] | None = None

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        try:
            self.plan_text = _plan(context).describe()
        except ScenecastError as exc:
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        return context.window_manager.invoke_props_dialog(self, width=520)

    def draw(self, context: bpy.types.Context) -> None:
        col = self.layout.column(align=True)
        for part in getattr(self, "plan_text", "").split("; "):
            col.label(text=part)
        col.label(text="A GPU build downloads about 3 GB. Esc cancels.")

    def execute(self, context: bpy.types.Context) -> set[Result]:
        try:
            plan = _plan(context)
        except ScenecastError as exc:
            self.report({"ERROR"}, _message(exc))
            return {"CANCELLED"}
        log = os.path.join(os.path.dirname(blender_settings.log_path()), "install.log")
        if bpy.app.background:
            try:
                python = backend_install.run_install(plan, log_path=log)
            except ScenecastError as exc:
                self.report({"ERROR"}, _message(exc))
                return {"CANCELLED"}
            return self._finish(context, python)
        events: queue.Queue = queue.Queue()
        cancel = threading.Event()
        result: dict[str, Any] = {}
        self._events, self._cancel, self._result = events, cancel, result

        def work() -> None:
            try:
                result["python"] = backend_install.run_install(plan, events.put, cancel, log)
            except ScenecastError as exc:
                result["error"] = exc

        self._worker = threading.Thread(target=work, name="scenecast-install", daemon=True)
        self._worker.start()
        self._timer = context.window_manager.event_timer_add(TICK_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set(f"Scenecast: {plan.torch.describe()} (Esc to cancel)")
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        if event.type == "ESC" and self._cancel is not None:
            self._cancel.set()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        last = None
        while self._events is not None and not self._events.empty():
            last = self._events.get_nowait()
        if last is not None:
            context.workspace.status_text_set(
                f"Scenecast install {last.fraction * 100:.0f}%: {last.label} — {last.message}  (Esc to cancel)")
        if self._worker is not None and self._worker.is_alive():
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        error = (self._result or {}).get("error")
        if error is not None:
            self.report({"WARNING" if isinstance(error, backend_install.InstallCancelled) else "ERROR"}, _message(error))
            return {"CANCELLED"}
        return self._finish(context, (self._result or {})["python"])

    def _finish(self, context: bpy.types.Context, python: str) -> set[Result]:
        context.preferences.addons[blender_settings.ADDON_ID].preferences.backend_python = python
        self.report({"INFO"}, f"Scenecast backend installed; Backend Python set to {python}")
        return {"FINISHED"}


class SCENECAST_OT_stop_left_backend(bpy.types.Operator):
    """Stop the backend an earlier Blender session started and left running"""

    bl_idname = "scenecast.stop_left_backend"
    bl_label = "Stop Left Backend"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        record = backend_owner.read(os.path.dirname(blender_settings.log_path()))
        return record is not None and not record.owner_alive and backend_owner.pid_alive(record.pid)

    def execute(self, context: bpy.types.Context) -> set[Result]:
        settings = blender_settings.preferences(context)
        stopped = backend_owner.stop_left(os.path.dirname(settings.log_path), settings.token)
        if stopped is None:
            self.report({"INFO"}, "No backend left running by an earlier Blender")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Stopped the backend left running at {stopped.url} (pid {stopped.pid})")
        return {"FINISHED"}


classes = (SCENECAST_OT_install_backend, SCENECAST_OT_stop_left_backend)
