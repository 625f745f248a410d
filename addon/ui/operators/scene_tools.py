"""Operators: cancel the running run, extract passes into images, add/remove ControlNet units."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy

from ... import api
from ...blender.image_pixels import image_from_array, show_in_image_editors
from ...features import checks
from .. import job_operator

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems as Result
else:
    Result = str


class SCENECAST_OT_cancel(bpy.types.Operator):
    """Cancel the running Scenecast run (its job on the server too; finished views and frames stay)"""

    bl_idname = "scenecast.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return job_operator.poll_with_reason(cls, None if job_operator.active() is not None
                                             else "no Scenecast run is going: nothing to cancel")

    def execute(self, context: bpy.types.Context) -> set[Result]:
        if not job_operator.cancel_active():
            self.report({"WARNING"}, "No Scenecast run is going")
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
        return job_operator.poll_with_reason(cls, checks.camera_problem(context.scene))

    def execute(self, context: bpy.types.Context) -> set[Result]:
        scene = context.scene
        if scene is None:  # poll() keeps this from happening in the UI
            return {"CANCELLED"}
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


classes: tuple[type, ...] = (SCENECAST_OT_cancel, SCENECAST_OT_extract_passes, SCENECAST_OT_unit_add,
                             SCENECAST_OT_unit_remove)
