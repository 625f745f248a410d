"""Texture Objects' three modes end to end (issue 14): the installed add-on, a real backend on builtin:tiny.

``synchronized`` and ``separate`` send ONE texture_sync job (fused for 80% of the steps, or not at all);
``sequential`` is a generate job then inpaint jobs. Each writes a texture into every target's UV image
through the same material path, and one undo takes the run away.
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

TINY = dict(model="builtin:tiny", size=64, steps=2, seed=5, texture_size=64)
SPREADS: dict[str, float] = {}  # latent spread of the views at shared texels, per mode (filled in order)


@pytest.fixture(autouse=True)
def no_images_left_behind():
    """The textures and materials these runs make are removed afterwards: later test files expect
    "Car Scenecast" to be free (bpy.data outlives each test's scene)."""
    images, materials = set(bpy.data.images.keys()), set(bpy.data.materials.keys())
    yield
    for name in [n for n in bpy.data.materials.keys() if n not in materials]:
        bpy.data.materials.remove(bpy.data.materials[name])
    for name in [n for n in bpy.data.images.keys() if n not in images]:
        bpy.data.images.remove(bpy.data.images[name])


def record(url: str, job_id: str) -> dict:
    with urllib.request.urlopen(f"{url}/v1/jobs/{job_id}/record") as response:
        return json.loads(response.read())


def texture_pixels(image) -> np.ndarray:
    px = np.empty(image.size[0] * image.size[1] * 4, dtype=np.float32)
    image.pixels.foreach_get(px)
    return px.reshape(image.size[1], image.size[0], 4)


@pytest.mark.parametrize("mode", ["synchronized", "separate", "sequential"])
def test_each_mode_writes_a_texture_into_every_target(api, backend, scene, mode):
    car, lamp = scene.objects["Car"], scene.objects["Lamp"]
    cameras_before = {o.name for o in scene.objects if o.type == "CAMERA"}
    old_material = car.active_material
    result = api.texture_objects([car, lamp], prompt="rusty metal", views=3, server=backend.url, mode=mode,
                                 view_suffixes=mode == "synchronized", **TINY)
    assert set(result) == {car, lamp}
    for obj, image in result.items():
        # (names get .001 when an earlier test's texture is still in bpy.data)
        assert image.name.startswith(f"{obj.name} Scenecast") and tuple(image.size) == (64, 64)
        assert obj.active_material.name.startswith(f"{obj.name} Scenecast")
        assert texture_pixels(image)[..., :3].std() > 0.01, f"{mode}: the texture of {obj.name} is flat"
        assert result.coverage[obj.name] > 0.2, (mode, result.coverage)
    assert car.active_material is not old_material
    jobs = list(dict.fromkeys(v["job_id"] for v in result.views if not v.get("skipped")))
    if mode == "sequential":
        assert len(jobs) >= 2
        assert record(backend.url, jobs[0])["spec"]["stages"][0]["type"] == "generate"
        assert all(record(backend.url, j)["spec"]["stages"][0]["type"] == "inpaint" for j in jobs[1:])
    else:
        assert len(jobs) == 1 and len(result.views) == 3  # every view in one job
        rec = record(backend.url, jobs[0])
        stage = rec["spec"]["stages"][0]
        assert stage["type"] == "texture_sync" and len(stage["views"]) == 3
        assert stage["sync_fraction"] == (0.8 if mode == "synchronized" else 0.0)
        assert len(rec["inputs"][stage["correspondence"]]) == 64  # the part's sha256, like an image's
        assert len(result.files) == 3 + 2  # the views, the texture and weight strips
        sync = rec["resolved"]["stages"][0]["sync"]
        # the add-on's correspondence lets views share texels (latent and image), and the mode decides fusion
        assert sync["views"] == 3 and sync["texels_seen"] > 0 and sync["latent_texels"] > 0, sync
        assert (sync["fused_steps"] > 0) == (mode == "synchronized"), sync
        SPREADS[mode] = sync["latent_spread"]
        if len(SPREADS) == 2:  # the views agree in latent space when fused, not when separate
            assert SPREADS["synchronized"] < 0.5 * SPREADS["separate"], SPREADS
        if mode == "synchronized":
            suffixes = [v["prompt_suffix"] for v in stage["views"]]
            assert all(s.endswith(" view") for s in suffixes), suffixes
    assert {o.name for o in scene.objects if o.type == "CAMERA"} == cameras_before, "the rig was left behind"


def test_synchronized_mode_on_a_flow_transformer(api, backend, scene):
    """FLUX.1 (builtin:tiny-flux) through the same feature: one texture_sync job, fused on the flow path."""
    car = scene.objects["Car"]
    result = api.texture_objects([car], prompt="painted wood", views=2, server=backend.url,
                                 **{**TINY, "model": "builtin:tiny-flux"})
    assert texture_pixels(result[car])[..., :3].std() > 0.01 and result.coverage[car.name] > 0.2
    jobs = {v["job_id"] for v in result.views}
    assert len(jobs) == 1 and {v["mode"] for v in result.views} == {"synchronized"}
    rec = record(backend.url, jobs.pop())["resolved"]["stages"][0]
    assert rec["family"] == "flux" and rec["sync"]["fused_steps"] > 0 and rec["sync"]["texels_seen"] > 0, rec


def test_synchronized_is_the_default(api, backend, scene):
    """(One undo after each mode: test_undo.py.)"""
    car = scene.objects["Car"]
    result = api.texture_objects([car], prompt="painted wood", views=2, server=backend.url, **TINY)
    jobs = {v["job_id"] for v in result.views}
    assert len(jobs) == 1 and {v["mode"] for v in result.views} == {"synchronized"}
    assert record(backend.url, jobs.pop())["spec"]["stages"][0]["sync_fraction"] == 0.8
    scene.scenecast.texture_mode = "separate"  # the panel's Texture Mode is what an unset mode means
    result = api.texture_objects([car], prompt="painted wood", views=2, server=backend.url, **TINY)
    assert {v["mode"] for v in result.views} == {"separate"}
    assert record(backend.url, result.views[0]["job_id"])["spec"]["stages"][0]["sync_fraction"] == 0.0


def test_cancelling_the_synchronized_job_writes_nothing_and_removes_the_rig(api, backend, scene):
    import importlib
    import threading

    from e2e_support import ADDON_MODULE

    remote_job = importlib.import_module(ADDON_MODULE + ".core.remote_job")
    car = scene.objects["Car"]
    images_before, material_before = set(bpy.data.images.keys()), car.active_material
    cameras_before = {o.name for o in scene.objects if o.type == "CAMERA"}
    cancel = threading.Event()

    def on_view(i: int, n: int, text: str) -> None:
        if "together" in text:
            cancel.set()  # the one job is cancelled on the server

    with pytest.raises(remote_job.JobFailed) as err:
        api.texture_objects([car], prompt="x", views=3, server=backend.url, cancel=cancel, on_view=on_view, **TINY)
    assert err.value.status == "cancelled"
    assert {o.name for o in scene.objects if o.type == "CAMERA"} == cameras_before
    assert not [n for n in bpy.data.images.keys() if n not in images_before and "Scenecast" in n]
    assert car.active_material == material_before
