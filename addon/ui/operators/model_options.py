"""Operators of the model options (issue 13): add/remove a LoRA, save the current settings as a preset."""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy

from ... import api

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems as Result
else:
    Result = str


class SCENECAST_OT_lora_add(bpy.types.Operator):
    """Add a LoRA to the base model (pick an installed one or type a hub id / file name)"""

    bl_idname = "scenecast.lora_add"
    bl_label = "Add LoRA"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[Result]:
        s = context.scene.scenecast  # type: ignore[attr-defined]
        s.loras.add()
        s.active_lora = len(s.loras) - 1
        return {"FINISHED"}


class SCENECAST_OT_lora_remove(bpy.types.Operator):
    """Remove the selected LoRA"""

    bl_idname = "scenecast.lora_remove"
    bl_label = "Remove LoRA"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        s = context.scene.scenecast  # type: ignore[attr-defined]
        if 0 <= s.active_lora < len(s.loras):
            return True
        cls.poll_message_set("no LoRA is selected: add one with +, or select one in the list")
        return False

    def execute(self, context: bpy.types.Context) -> set[Result]:
        s = context.scene.scenecast  # type: ignore[attr-defined]
        s.loras.remove(s.active_lora)
        s.active_lora = min(s.active_lora, len(s.loras) - 1)
        return {"FINISHED"}


class SCENECAST_OT_save_preset(bpy.types.Operator):
    """Save the panel's settings (negative prompt, steps, guidance, sampler, LoRAs, ControlNet units) as a
    preset in your user presets folder"""

    bl_idname = "scenecast.save_preset"
    bl_label = "Save Preset"
    bl_options = {"REGISTER"}

    name: bpy.props.StringProperty(name="Name", default="my-preset")  # type: ignore[valid-type]
    description: bpy.props.StringProperty(name="Description", default="")  # type: ignore[valid-type]
    overwrite: bpy.props.BoolProperty(name="Overwrite", default=False,  # type: ignore[valid-type]
                                      description="Replace a user preset of the same name")

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        return context.window_manager.invoke_props_dialog(self)  # type: ignore[return-value]

    def execute(self, context: bpy.types.Context) -> set[Result]:
        scene = context.scene
        if scene is None:
            return {"CANCELLED"}
        try:
            path = api.save_preset(scene, self.name, description=self.description, overwrite=self.overwrite)
        except (ValueError, OSError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Scenecast: preset saved as {path}")
        return {"FINISHED"}


classes: tuple[type, ...] = (SCENECAST_OT_lora_add, SCENECAST_OT_lora_remove, SCENECAST_OT_save_preset)
