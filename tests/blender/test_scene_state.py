"""Extraction leaves the user's scene exactly as it was — after success and after a failure halfway."""

from __future__ import annotations

import importlib
import os

import bpy
import pytest

from blender_scenes import add_camera, add_cube, add_plane, add_sphere


def user_scene(scene: bpy.types.Scene) -> dict:
    """A scene with settings unlike everything extraction uses, and a user material with nodes."""
    cam = add_camera(scene, location=(0, 0, 0))
    other_cam = add_camera(scene, location=(0, 0, 2), name="OtherCam")
    scene.camera = other_cam  # extraction renders from `cam`; the active camera must come back
    ball = add_sphere(scene, location=(0, 0, -5), segments=24, rings=12)
    box = add_cube(scene, location=(1.5, 0, -6))
    floor = add_plane(scene, name="Floor", size=30, location=(0, -1, -5), rotation=(1.5708, 0, 0))
    ball.pass_index, box.pass_index, floor.pass_index = 5, 5, 0

    mat = bpy.data.materials.new("UserPaint")
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (0.1, 0.2, 0.3, 1.0)
    ball.data.materials.append(mat)
    override = bpy.data.materials.new("UserOverride")
    view_layer = scene.view_layers[0]
    view_layer.material_override = override

    render = scene.render
    render.engine = "BLENDER_WORKBENCH"
    render.resolution_x, render.resolution_y, render.resolution_percentage = 1280, 720, 37
    render.filepath = "//renders/shot_"
    render.film_transparent = False
    render.use_border = True
    settings = render.image_settings
    settings.file_format = "PNG"
    settings.color_mode = "RGB"
    settings.color_depth = "16"
    scene.cycles.samples = 77
    scene.cycles.device = "CPU"
    scene.cycles.use_denoising = True
    scene.cycles.pixel_filter_type = "GAUSSIAN"
    scene.cycles.filter_width = 2.5
    scene.cycles.max_bounces = 9
    view_layer.use_pass_mist = True
    view_layer.use_pass_z = False
    view_layer.use_pass_normal = False
    view_layer.use_pass_object_index = False
    view_layer.cycles.denoising_store_passes = True
    scene.view_settings.view_transform = "AgX" if bpy.app.version >= (4, 0, 0) else "Filmic"
    scene.view_settings.exposure = 0.5
    compat = importlib.import_module("bl_ext.user_default.scenecast.blender.compat")
    compat.compositor_tree(scene)  # the user's compositor on (a node tree, or 4.x's use_nodes)
    scene.frame_set(7)
    for obj in (ball, box):
        obj.select_set(True, view_layer=view_layer)
    view_layer.objects.active = box
    return {"camera": cam, "ball": ball, "material": mat}


def material_fingerprint() -> dict:
    out = {}
    for mat in bpy.data.materials:
        tree = mat.node_tree
        nodes = sorted((n.name, n.bl_idname) for n in tree.nodes) if tree else []
        out[mat.name] = (nodes, len(tree.links) if tree else 0, mat.users)
    return out


def record_temp_exrs(passes_module, monkeypatch) -> list[str]:
    """The EXR paths this process's extraction creates (other processes may use /dev/shm too)."""
    made: list[str] = []
    original = passes_module._temp_exr_path

    def recording() -> str:
        made.append(original())
        return made[-1]

    monkeypatch.setattr(passes_module, "_temp_exr_path", recording)
    return made


def test_extraction_restores_every_setting(empty_scene, sc_module, monkeypatch):
    scene_state, extract = sc_module("blender.scene_state"), sc_module("blender.extract")
    objs = user_scene(empty_scene)
    view_layer = empty_scene.view_layers[0]
    before = scene_state.capture_state(empty_scene, view_layer)
    materials, exrs = material_fingerprint(), record_temp_exrs(sc_module("blender.passes"), monkeypatch)
    images = {i.name for i in bpy.data.images if i.type != "RENDER_RESULT"}

    passes = extract.extract_passes(empty_scene, objs["camera"], (48, 32), frame=3, clay=True)
    assert passes.frame == 3 and passes.raw["depth"].shape == (32, 48)

    after = scene_state.capture_state(empty_scene, view_layer)
    assert after == before
    assert before["scene.render.engine"] == "BLENDER_WORKBENCH" and before["scene.frame"] == (7, 0.0)
    assert before["objects.pass_index"]["Sphere"] == 5
    assert material_fingerprint() == materials
    assert tuple(objs["material"].node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value) == pytest.approx(
        (0.1, 0.2, 0.3, 1.0)
    )
    assert {i.name for i in bpy.data.images if i.type != "RENDER_RESULT"} == images
    assert len(exrs) == 1 and not os.path.exists(exrs[0])
    assert exrs[0].startswith("/dev/shm/") or not os.path.isdir("/dev/shm")  # in RAM where there is RAM disk


def test_state_is_restored_when_reading_passes_fails(empty_scene, sc_module, monkeypatch):
    scene_state, extract, exr = (sc_module(m) for m in ("blender.scene_state", "blender.extract", "blender.exr"))
    objs = user_scene(empty_scene)
    view_layer = empty_scene.view_layers[0]
    before = scene_state.capture_state(empty_scene, view_layer)
    materials, exrs = material_fingerprint(), record_temp_exrs(sc_module("blender.passes"), monkeypatch)

    def broken_reader(path):
        assert os.path.exists(path)  # Blender did write the file: we are past the render
        raise OSError("disk on fire")

    monkeypatch.setattr(exr, "read_exr", broken_reader)
    with pytest.raises(OSError, match="disk on fire"):
        extract.extract_passes(empty_scene, objs["camera"], (48, 32), frame=2)

    assert scene_state.capture_state(empty_scene, view_layer) == before
    assert material_fingerprint() == materials  # the clay material is gone again
    assert len(exrs) == 1 and not os.path.exists(exrs[0])  # and the EXR file was deleted


def test_state_is_restored_when_conversion_fails(empty_scene, sc_module, monkeypatch):
    scene_state, passes = sc_module("blender.scene_state"), sc_module("blender.passes")
    objs = user_scene(empty_scene)
    view_layer = empty_scene.view_layers[0]
    before = scene_state.capture_state(empty_scene, view_layer)

    def broken(*args, **kwargs):
        raise ValueError("bad maths")

    monkeypatch.setattr(passes, "normals_world_to_camera", broken)
    with pytest.raises(ValueError, match="bad maths"):
        passes.render_passes(empty_scene, objs["camera"], (32, 24), color=True, color_samples=1)
    assert scene_state.capture_state(empty_scene, view_layer) == before


def test_users_last_render_stays_in_its_render_slot(empty_scene, sc_module, tmp_path):
    passes, exr = sc_module("blender.passes"), sc_module("blender.exr")
    cam = add_camera(empty_scene)
    add_plane(empty_scene, size=40, location=(0, 0, -3))
    render = empty_scene.render
    render.engine = "CYCLES"
    empty_scene.cycles.samples = 1
    render.resolution_x, render.resolution_y, render.resolution_percentage = 16, 16, 100
    empty_scene.view_layers[0].use_pass_z = True
    bpy.ops.render.render()  # the user's own render
    result = next(i for i in bpy.data.images if i.type == "RENDER_RESULT")
    slot = result.render_slots.active_index

    def user_depth() -> float:
        settings = render.image_settings
        if hasattr(settings, "media_type"):
            settings.media_type = "MULTI_LAYER_IMAGE"
        settings.file_format = "OPEN_EXR_MULTILAYER"
        path = str(tmp_path / f"user{len(list(tmp_path.iterdir()))}.exr")
        result.save_render(path, scene=empty_scene)
        return float(exr.read_exr(path)["ViewLayer.Depth.Z"].mean())

    assert user_depth() == pytest.approx(3.0, rel=1e-4)
    raw = passes.render_passes(empty_scene, cam, (20, 10), frame=None)
    empty_scene.objects["Plane"].location.z = -9  # not re-rendered: the user's result must still say 3
    assert raw.depth.mean() == pytest.approx(3.0, rel=1e-4)
    assert result.render_slots.active_index == slot
    assert user_depth() == pytest.approx(3.0, rel=1e-4)


def test_capture_state_sees_changes(empty_scene, sc_module):
    """The snapshot is not vacuous: changing any of these is visible in it."""
    scene_state = sc_module("blender.scene_state")
    user_scene(empty_scene)
    view_layer = empty_scene.view_layers[0]
    before = scene_state.capture_state(empty_scene, view_layer)
    changes = [
        lambda: setattr(empty_scene.render, "engine", "CYCLES"),
        lambda: setattr(empty_scene.cycles, "samples", 1),
        lambda: setattr(view_layer, "use_pass_z", True),
        lambda: setattr(view_layer.cycles, "denoising_store_passes", False),
        lambda: setattr(view_layer, "material_override", None),
        lambda: setattr(empty_scene.render, "filepath", "/tmp/x"),
        lambda: empty_scene.frame_set(1),
        lambda: setattr(empty_scene.objects["Cube"], "pass_index", 9),
        lambda: empty_scene.objects["Floor"].select_set(True, view_layer=view_layer),
        lambda: setattr(empty_scene.view_settings, "view_transform", "Standard"),
    ]
    for change in changes:
        change()
        assert scene_state.capture_state(empty_scene, view_layer) != before
        failed = scene_state.restore_state(empty_scene, view_layer, before)
        assert failed == []
        assert scene_state.capture_state(empty_scene, view_layer) == before


def test_freestyle_extraction_restores_the_users_line_sets(empty_scene, sc_module):
    scene_state, extract = sc_module("blender.scene_state"), sc_module("blender.extract")
    objs = user_scene(empty_scene)
    view_layer = empty_scene.view_layers[0]
    settings = view_layer.freestyle_settings
    user_style = bpy.data.linestyles.new("UserInk")
    if len(settings.linesets) == 0:
        settings.linesets.new("UserLines")
    settings.linesets[0].linestyle = user_style
    settings.linesets[0].show_render = True
    settings.as_render_pass = False
    empty_scene.render.line_thickness = 3.0
    before = scene_state.capture_state(empty_scene, view_layer)
    assert before["view_layer.linesets"][0][1] is True
    styles_before = {style.name for style in bpy.data.linestyles}

    passes = extract.extract_passes(empty_scene, objs["camera"], (32, 24), edges="freestyle")
    assert passes.control["edges"].max() == 255

    assert scene_state.capture_state(empty_scene, view_layer) == before
    assert [ls.name for ls in settings.linesets] == [name for name, _ in before["view_layer.linesets"]]
    styles = [style.name for style in bpy.data.linestyles]
    assert "UserInk" in styles and not [name for name in styles if "Scenecast" in name]
    assert set(styles) == styles_before, "no orphan line style is left behind"
    assert settings.linesets[0].linestyle == user_style
