"""Multi-view texturing end to end: the installed add-on, a real backend on builtin:tiny, the demo blockout."""

from __future__ import annotations

import importlib
import json
import threading
import urllib.request

import numpy as np
import pytest

from e2e_support import ADDON_MODULE

bpy = pytest.importorskip("bpy")

TINY = dict(model="builtin:tiny", size=128, steps=2, seed=5, texture_size=64)


def job_spec(url: str, job_id: str) -> dict:
    """The spec the backend ran (the job's record; the job status holds no spec)."""
    with urllib.request.urlopen(f"{url}/v1/jobs/{job_id}/record") as response:
        return json.loads(response.read())["spec"]


def texture_pixels(image) -> np.ndarray:
    px = np.empty(image.size[0] * image.size[1] * 4, dtype=np.float32)
    image.pixels.foreach_get(px)
    return px.reshape(image.size[1], image.size[0], 4)


def scene_cameras(scene) -> set[str]:
    return {o.name for o in scene.objects if o.type == "CAMERA"}


def test_sequential_views_generate_then_inpaint_and_every_object_gets_its_own_texture(api, backend, scene):
    car, lamp = scene.objects["Car"], scene.objects["Lamp"]
    cameras_before = scene_cameras(scene)
    progress: list[str] = []
    result = api.texture_objects([car, lamp], prompt="rusty metal", views=4, server=backend.url, mode="sequential",
                                 on_view=lambda i, n, text: progress.append(text), **TINY)
    assert set(result) == {car, lamp}
    for obj, image in result.items():
        assert image.name == f"{obj.name} Scenecast" and tuple(image.size) == (64, 64)
        assert obj.active_material.name == f"{obj.name} Scenecast"  # the new material shows it
        px = texture_pixels(image)[..., :3]
        assert px.std() > 0.01, "the texture is flat: nothing was projected"
        assert result.coverage[obj.name] > 0.4
    done = [v for v in result.views if not v.get("skipped")]
    assert done[0]["first"] and not any(v["first"] for v in done[1:])
    assert len({v["job_id"] for v in done}) == len(done) >= 2
    # View 1 generates; later views are inpaint jobs on the texture so far, with a mask: the backend got
    # what we meant.
    assert [s["type"] for s in job_spec(backend.url, done[0]["job_id"])["stages"]] == ["generate"]
    for view in done[1:]:
        stage = job_spec(backend.url, view["job_id"])["stages"][0]
        assert stage["type"] == "inpaint" and stage["mask"] == "mask" and stage["image"] == "init"
    assert any("view 1/4: generating" in p for p in progress) and any("projecting" in p for p in progress)
    assert scene_cameras(scene) == cameras_before, "temporary rig cameras were left in the scene"
    assert not any(o.hide_render for o in scene.objects), "objects hidden for isolation stayed hidden"
    assert not [c for c in bpy.data.collections if c.name.startswith("Scenecast Rig")]


def test_the_users_own_cameras_can_be_the_views(api, backend, scene):
    car = scene.objects["Car"]
    result = api.texture_objects([car], prompt="a red car", views=[scene.camera], server=backend.url, **TINY)
    assert [v["camera"] for v in result.views] == [scene.camera.name]
    assert 0.0 < result.coverage["Car"] < 1.0  # one camera sees part of the car; the rest was filled
    assert any("no view saw" in n for n in result.notes)


def test_cancel_between_views_keeps_the_views_done_and_removes_the_rig(api, backend, scene):
    car = scene.objects["Car"]
    cancel = threading.Event()
    cameras_before = scene_cameras(scene)

    def on_view(i: int, n: int, text: str) -> None:
        if i == 1 and "generating" in text:
            cancel.set()  # the job of view 2 is cancelled on the server

    errors = importlib.import_module(ADDON_MODULE + ".core.remote_job")
    with pytest.raises(errors.JobFailed) as err:
        api.texture_objects([car], prompt="a red car", views=3, server=backend.url, cancel=cancel,
                            on_view=on_view, mode="sequential", **TINY)
    assert err.value.status == "cancelled"
    assert scene_cameras(scene) == cameras_before
    texture = bpy.data.images.get("Car Scenecast")
    assert texture is not None and texture_pixels(texture)[..., :3].std() > 0.01  # view 1 stays


@pytest.mark.parametrize("bad, match", [
    (dict(prompt=""), "prompt is empty"),
    (dict(views=0), "at least 1"),
    (dict(size=100), "multiple of 8"),
])
def test_bad_arguments_change_nothing(api, backend, scene, bad, match):
    car = scene.objects["Car"]
    images_before, cams_before = set(bpy.data.images.keys()), scene_cameras(scene)
    materials_before = [s.material for s in car.material_slots]
    args = dict(TINY, prompt="x", server=backend.url) | bad
    with pytest.raises(ValueError, match=match):
        api.texture_objects([car], **args)
    assert set(bpy.data.images.keys()) == images_before and scene_cameras(scene) == cams_before
    assert [s.material for s in car.material_slots] == materials_before


def test_non_mesh_objects_are_refused_with_the_fix(api, backend, scene):
    with pytest.raises(ValueError, match="only mesh objects"):
        api.texture_objects([scene.camera], prompt="x", server=backend.url, **TINY)


def test_operator_blocks_in_background_and_restore_materials_brings_the_old_material_back(scenecast, backend, scene, prefs):
    """(What one undo does after Texture Objects: test_undo.py.)"""
    prefs.server_url = backend.url
    s = scene.scenecast
    s.prompt, s.model, s.width, s.height, s.steps, s.seed = "painted wood", "builtin:tiny", 64, 64, 1, 2
    car = scene.objects["Car"]
    old = car.active_material
    for obj in scene.objects:
        obj.select_set(obj is car)
    with bpy.context.temp_override(scene=scene, selected_objects=[car], active_object=car):
        assert bpy.ops.scenecast.texture_objects(views=2, texture_size=64) == {"FINISHED"}
    assert car.active_material.name == "Car Scenecast"
    with bpy.context.temp_override(scene=scene, selected_objects=[car], active_object=car):
        assert bpy.ops.scenecast.restore_materials.poll()  # restore works on the selection
        assert bpy.ops.scenecast.restore_materials() == {"FINISHED"}
    assert car.active_material == old


def test_the_headless_entry_textures_each_object_in_its_own_process(scenecast, backend, scene, tmp_path):
    """examples/texture_objects.py, as a farm task runs it (tools/flamenco): PNG + record per object, re-runnable."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    blend = tmp_path / "set.blend"
    bpy.data.libraries.write(str(blend), {scene}, fake_user=True)
    out = tmp_path / "textures"
    script = Path(__file__).resolve().parents[2] / "examples" / "texture_objects.py"
    cmd = [sys.executable, str(script), "--blend", str(blend), "--scene", scene.name, "--objects", "Car",
           "--out", str(out), "--prompt", "a red car", "--server", backend.url, "--model", "builtin:tiny",
           "--size", "64", "--steps", "2", "--seed", "5", "--views", "2", "--texture-size", "64"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["Car.json", "Car.png"]
    record = json.loads((out / "Car.json").read_text())
    assert record["object"] == "Car" and record["seed"] == 5 and len(record["jobs"]) >= 1 and record["coverage"] > 0
    # Again: the object is done, the farm can simply re-run a task.
    proc = subprocess.run(cmd, cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "kept Car" in proc.stdout, proc.stderr[-3000:]
    bad = subprocess.run(cmd[:7] + ["Nope"] + cmd[8:], cwd=tmp_path, env=dict(os.environ), capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2 and "no object 'Nope'" in bad.stderr
