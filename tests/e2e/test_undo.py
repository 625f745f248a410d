"""What one Ctrl-Z (``bpy.ops.ed.undo``) does after each feature's operator: it undoes exactly that run.

Each test marks the state before the run with an undo step holding a marker object, runs the
operator (blocking: bpy as a module), undoes once — the run's changes are gone, the marker (made
before) stays — and redoes once — the run's changes are back: the run is one undo step of its own.
Undo frees every Python reference to Blender data, so these tests hold names only.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Iterator

import pytest

from e2e_support import ADDON_MODULE

bpy = pytest.importorskip("bpy")


@pytest.fixture
def scene_name(scenecast, backend, prefs, tmp_path) -> Iterator[str]:
    """A blockout scene set up for builtin:tiny, made the window's scene; removed by name afterwards."""
    import blockout_scene

    scene = blockout_scene.build(f"Undo {os.getpid()}-{time.monotonic_ns()}", resolution=(64, 64))
    name = scene.name
    prefs.server_url, prefs.output_dir = backend.url, str(tmp_path / "results")
    s = scene.scenecast
    s.prompt, s.model, s.width, s.height, s.steps, s.seed = "painted wood", "builtin:tiny", 64, 64, 1, 2
    previous = bpy.context.window.scene.name
    bpy.context.window.scene = scene
    yield name
    bpy.context.window.scene = bpy.data.scenes[previous]
    scene = bpy.data.scenes.get(name)
    if scene is not None:
        objects = [o.name for o in scene.objects]
        bpy.data.scenes.remove(scene)
        for obj in objects:
            if obj in bpy.data.objects:
                bpy.data.objects.remove(bpy.data.objects[obj])
    if "Undo Marker" in bpy.data.objects:
        bpy.data.objects.remove(bpy.data.objects["Undo Marker"])


def mark_before(scene_name: str) -> None:
    marker = bpy.data.objects.new("Undo Marker", None)
    bpy.data.scenes[scene_name].collection.objects.link(marker)
    bpy.ops.ed.undo_push(message="before the run")


def undo_then_redo(changes) -> tuple:
    """(changes after the run, after one undo, after one redo); the marker survives the undo."""
    after_run = changes()
    bpy.ops.ed.undo()
    assert "Undo Marker" in bpy.data.objects, "one undo went back past the run"
    after_undo = changes()
    bpy.ops.ed.redo()
    return after_run, after_undo, changes()


def texture_state(scene_name: str) -> tuple:
    car = bpy.data.scenes[scene_name].objects["Car"]
    return (car.active_material.name if car.active_material else None, "Car Scenecast" in bpy.data.images,
            tuple(uv.name for uv in car.data.uv_layers))


def select_car(scene_name: str):
    scene = bpy.data.scenes[scene_name]
    car = scene.objects["Car"]
    for obj in scene.objects:
        obj.select_set(obj == car)
    return bpy.context.temp_override(scene=scene, selected_objects=[car], active_object=car)


def test_one_undo_after_generate_removes_its_images(scene_name):
    before = set(bpy.data.images.keys())
    bpy.data.scenes[scene_name].scenecast.units.add().type = "depth"
    mark_before(scene_name)
    with bpy.context.temp_override(scene=bpy.data.scenes[scene_name]):
        assert bpy.ops.scenecast.generate() == {"FINISHED"}
    run, undone, redone = undo_then_redo(lambda: set(bpy.data.images.keys()) - before)
    assert len(run) == 1 and undone == set() and redone == run


def test_one_undo_after_stylize_frame_removes_the_image_and_the_camera_background(scene_name):
    bpy.data.scenes[scene_name].scenecast_frames.camera_background = True
    mark_before(scene_name)
    with bpy.context.temp_override(scene=bpy.data.scenes[scene_name]):
        assert bpy.ops.scenecast.stylize_frame() == {"FINISHED"}

    def backgrounds():
        camera = bpy.data.scenes[scene_name].camera
        return [bg.image.name for bg in camera.data.background_images if bg.image]

    run, undone, redone = undo_then_redo(backgrounds)
    assert len(run) == 1 and undone == [] and redone == run


def test_one_undo_after_stylize_frames_removes_the_strip_and_keeps_the_files(scene_name, tmp_path):
    f = bpy.data.scenes[scene_name].scenecast_frames
    f.use_scene_range, f.frame_start, f.frame_end = False, 1, 2
    f.output_dir, f.add_strip = str(tmp_path / "frames"), True
    mark_before(scene_name)
    with bpy.context.temp_override(scene=bpy.data.scenes[scene_name]):
        assert bpy.ops.scenecast.stylize_frames() == {"FINISHED"}

    def strips():
        editor = bpy.data.scenes[scene_name].sequence_editor
        return [] if editor is None else [s.name for s in importlib.import_module(ADDON_MODULE + ".blender.compat").sequencer_strips(editor)]

    run, undone, redone = undo_then_redo(strips)
    assert len(run) == 1 and undone == [] and redone == run
    assert sorted(p.name for p in (tmp_path / "frames").glob("frame_*.png")) == ["frame_0001.png", "frame_0002.png"]


@pytest.mark.parametrize("mode", ["synchronized", "separate", "sequential"])
def test_one_undo_after_texture_objects_brings_the_old_material_back(scene_name, mode):
    old = texture_state(scene_name)
    mark_before(scene_name)
    with select_car(scene_name):
        assert bpy.ops.scenecast.texture_objects(views=2, texture_size=64, mode=mode) == {"FINISHED"}
    run, undone, redone = undo_then_redo(lambda: texture_state(scene_name))
    assert run[0] == "Car Scenecast" and run[1]
    assert undone == old and redone == run


def test_one_undo_after_a_cancelled_texture_objects_removes_the_views_it_finished(scene_name, monkeypatch):
    """Cancelled during view 2: view 1's texture stays on the mesh, and one undo takes it away."""
    job_operator = importlib.import_module(ADDON_MODULE + ".ui.job_operator")
    remote_job = importlib.import_module(ADDON_MODULE + ".core.remote_job")
    calls = []

    def cancel_the_second_job(request, **kwargs):
        calls.append(request.name)
        if len(calls) == 2:
            raise remote_job.JobFailed("cancelled during view 2", None, status="cancelled")
        return remote_job.run_job(request, **kwargs)

    monkeypatch.setattr(job_operator, "run_job", cancel_the_second_job)
    old = texture_state(scene_name)
    mark_before(scene_name)
    with select_car(scene_name):
        assert bpy.ops.scenecast.texture_objects(views=3, texture_size=64, mode="sequential") == {"CANCELLED"}
    assert len(calls) == 2
    run, undone, redone = undo_then_redo(lambda: texture_state(scene_name))
    assert run[0] == "Car Scenecast" and run[1], "the finished view stays after a cancel"
    assert undone == old and redone == run
