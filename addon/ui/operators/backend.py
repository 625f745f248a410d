"""Operators: start and stop the local backend, open its log.

Starting imports torch in the backend (seconds to a minute), so in the UI it runs in a worker thread
that gets plain values only (the preferences read on the main thread, ``Preferences.offline``
included): nothing in the worker reads bpy. A timer brings the result back to the main thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import bpy

from ...blender import settings as blender_settings
from ...core import backend_process
from ..job_operator import error_text

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems as Result
else:
    Result = str

_starting: dict[str, Any] = {}


def backend_starter(prefs: blender_settings.Preferences) -> Callable[[], backend_process.LocalBackend | None]:
    """The start-up call, closed over plain values: safe to run on any thread."""

    def start() -> backend_process.LocalBackend | None:
        return backend_process.ensure_backend(
            prefs.server, python=prefs.backend_python, backend_dir=prefs.backend_dir,
            token=prefs.token, log_path=prefs.log_path, offline=prefs.offline,
            models_folders=prefs.models_folders,
        )

    return start


class SCENECAST_OT_start_backend(bpy.types.Operator):
    """Start the local backend with the Python and directory set in the preferences"""

    bl_idname = "scenecast.start_backend"
    bl_label = "Start Backend"
    bl_options = {"REGISTER"}

    def execute(self, context: bpy.types.Context) -> set[Result]:
        prefs = blender_settings.preferences(context)
        start = backend_starter(prefs)
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

        def poll() -> float | None:  # a bpy.app timer: on the main thread
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
        prefs = blender_settings.preferences(context)
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
            path = blender_settings.preferences(context).log_path
        if not os.path.exists(path):
            self.report({"ERROR"}, f"No backend log yet at {path}: Scenecast has not started a backend here")
            return {"CANCELLED"}
        bpy.ops.wm.path_open(filepath=path)
        return {"FINISHED"}


classes: tuple[type, ...] = (SCENECAST_OT_start_backend, SCENECAST_OT_stop_backend, SCENECAST_OT_open_backend_log)
