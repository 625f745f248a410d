"""Greyed-out operators say why (``poll_message_set``), and scripts calling the api in the same state
get the same reason as a ``ScenecastError``."""

from __future__ import annotations

import importlib

import pytest

from e2e_support import ADDON_MODULE

bpy = pytest.importorskip("bpy")


def addon_module(name: str):
    return importlib.import_module(f"{ADDON_MODULE}.{name}")


def only_selected(scene, names):
    for obj in scene.objects:
        obj.select_set(obj.name in names)


def test_texture_objects_without_meshes_says_why_in_the_ui_and_in_scripts(api, scene):
    only_selected(scene, {scene.camera.name})
    with bpy.context.temp_override(scene=scene, selected_objects=[scene.camera], active_object=scene.camera):
        assert not bpy.ops.scenecast.texture_objects.poll()
        with pytest.raises(RuntimeError) as ui_error:
            bpy.ops.scenecast.texture_objects("EXEC_DEFAULT")
    errors = addon_module("core.errors")
    with pytest.raises(errors.ScenecastError) as script_error:
        api.texture_objects([scene.camera], prompt="x", model="builtin:tiny", size=64, steps=1)
    reason = str(script_error.value)
    assert "needs mesh objects" in reason and "select one or more mesh objects" in reason
    assert reason in str(ui_error.value)


def test_generate_without_a_camera_says_why_in_the_ui_and_in_scripts(api, scene):
    scene.camera = None
    scene.scenecast.prompt = "x"
    with bpy.context.temp_override(scene=scene):
        assert not bpy.ops.scenecast.generate.poll()
        with pytest.raises(RuntimeError) as ui_error:
            bpy.ops.scenecast.generate()
    errors = addon_module("core.errors")
    with pytest.raises(errors.ScenecastError) as script_error:
        api.generate(scene, prompt="x", model="builtin:tiny", width=64, height=64)
    assert "the scene has no camera" in str(script_error.value)
    assert str(script_error.value) in str(ui_error.value)


def test_cancel_with_nothing_running_says_so(scene):
    with bpy.context.temp_override(scene=scene):
        with pytest.raises(RuntimeError, match="nothing to cancel"):
            bpy.ops.scenecast.cancel()
