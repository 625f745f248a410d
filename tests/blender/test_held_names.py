"""Across each ``yield`` a feature holds names, never Blender data: undo, deleting or loading a file free
IDs while a job runs, and a reference kept across that points at freed memory. Each feature is run to
its first job and everything its paused generator can reach (locals, closures, the objects they hold)
is searched for ``bpy.types.ID``; also nothing of the user's is hidden while the job runs."""

from __future__ import annotations

import dataclasses

import bpy
import pytest

from blender_scenes import add_camera, add_cube


def ids_reachable(value, depth=4, seen=None):
    """Blender IDs in ``value``: containers, dataclasses and plain objects followed ``depth`` deep."""
    seen = set() if seen is None else seen
    if id(value) in seen or depth < 0:
        return []
    seen.add(id(value))
    if isinstance(value, bpy.types.ID):
        return [value.name]
    if isinstance(value, bpy.types.bpy_struct) or isinstance(value, (str, bytes, int, float, type(None))):
        return []
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    elif dataclasses.is_dataclass(value) or hasattr(value, "__dict__"):
        items = list(vars(value).values())
    else:
        return []
    return [name for item in items for name in ids_reachable(item, depth - 1, seen)]


def paused_ids(run):
    """Run to the first job; the IDs the paused generator reaches (its locals include its closure's)."""
    request = next(run.steps)
    return request, ids_reachable(dict(run.steps.gi_frame.f_locals))


@pytest.fixture
def scene(empty_scene):
    add_camera(empty_scene, location=(0.0, -6.0, 0.0), rotation=(1.5708, 0.0, 0.0))
    add_cube(empty_scene, name="Box")
    add_cube(empty_scene, name="Bystander", location=(4.0, 0.0, 0.0))
    return empty_scene


def job_settings(sc_module, scene, defaults="GENERATE"):
    settings = sc_module("features.settings")
    return settings.resolve(scene, defaults=getattr(settings, defaults), prompt="x", server="http://127.0.0.1:1",
                            model="builtin:tiny", width=64, height=64)


def test_generate_holds_no_blender_data_across_its_job(sc_module, scene):
    run = sc_module("features.generate").generate(scene, job_settings(sc_module, scene))
    _, held = paused_ids(run)
    assert held == []
    run.steps.close()


def test_stylize_frame_holds_no_blender_data_across_its_job(sc_module, scene):
    stylize = sc_module("features.stylize")
    run = stylize.stylize_frame(scene, job_settings(sc_module, scene, "STYLIZE"), camera_background=True)
    _, held = paused_ids(run)
    assert held == [] and run.held.object_names == [scene.camera.name]
    run.steps.close()


def test_stylize_frames_holds_no_blender_data_across_its_jobs(sc_module, scene, tmp_path):
    stylize = sc_module("features.stylize")
    run = stylize.stylize_frames(scene, job_settings(sc_module, scene, "STYLIZE"), 1, 2, str(tmp_path),
                                 depth_range=(1.0, 20.0))
    _, held = paused_ids(run)
    assert held == []
    run.steps.close()


def test_texture_objects_holds_no_blender_data_and_hides_nothing_across_its_jobs(sc_module, scene, tmp_path):
    texturing = sc_module("features.texturing")
    settings = texturing.settings_for(scene, prompt="x", server="http://127.0.0.1:1", size=64, texture_size=16)
    run = texturing.texture_objects(scene, [scene.objects["Box"]], settings, views=2)
    _, held = paused_ids(run)
    assert held == []
    assert not scene.objects["Bystander"].hide_render, "hidden only around each render, never across a job"
    assert [n for n in run.held.object_names if n.startswith("Scenecast View")] == ["Scenecast View 1", "Scenecast View 2"]
    run.steps.close()
    assert not [o for o in bpy.data.objects if o.name.startswith("Scenecast View")]
