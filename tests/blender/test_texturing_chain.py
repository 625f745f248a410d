"""Multi-view texturing against an oracle instead of a diffusion model: each "job" returns what Blender
renders of a sphere with a known texture from that view. The chain must then rebuild the known texture,
and the init image it sends for later views must be what those views really see of the texture so far."""

from __future__ import annotations

import re

import bpy
import numpy as np
import pytest

from test_projection import emission_material, known_texture, pixels, psnr, uv_sphere

SIZE = 128  # view size
TEX = 64  # texture size


@pytest.fixture
def oracle_scene(empty_scene, sc_module):
    """A target sphere (grey) and, at the same place, a hidden oracle sphere wearing the known texture."""
    scene = empty_scene
    target = uv_sphere(scene, "Ball")
    oracle = uv_sphere(scene, "Oracle")
    known = known_texture(TEX)
    image = bpy.data.images.new("Known", TEX, TEX, alpha=False)
    rgba = np.ones((TEX, TEX, 4), np.float32)
    rgba[..., :3] = known
    image.pixels.foreach_set(rgba.ravel())
    oracle.data.materials.append(emission_material(image, "UVMap"))
    oracle.hide_render = True
    return scene, target, oracle, known


def oracle_runner(scene, target, oracle, sc_module, tmp_path, seen_requests):
    remote_job = sc_module("core.remote_job")
    png = sc_module("core.png")

    def run(request, on_event=None, cancel=None, on_status=None):
        seen_requests.append(request)
        index = int(re.search(r"_view(\d+)$", request.name).group(1))
        camera = scene.objects[f"Scenecast View {index}"]
        target.hide_render, oracle.hide_render = True, False
        try:
            rgb = sc_module("blender.passes").render_passes(scene, camera, (SIZE, SIZE), color=True, color_samples=1).color
        finally:
            target.hide_render, oracle.hide_render = False, True
        path = tmp_path / f"{request.name}.png"
        path.write_bytes(png.encode_png(rgb))
        return remote_job.JobOutcome(job_id=f"oracle-{index}", model="oracle", files=[str(path)], status={})

    return run


def test_views_rebuild_a_known_texture_and_later_views_see_the_texture_so_far(oracle_scene, sc_module, tmp_path):
    scene, target, oracle, known = oracle_scene
    texturing = sc_module("features.texturing")
    base = sc_module("features.base")
    settings = texturing.TextureSettings(
        base_params={"prompt": "x", "seed": 0, "width": SIZE, "height": SIZE, "preview_every": 0},
        request_fields={"server": "http://127.0.0.1:1", "output_dir": str(tmp_path)},
        texture_size=(TEX, TEX), weight_params={"feather_px": 2.0}, mask_grow_px=2, mode="sequential",
    )
    requests = []
    run = texturing.texture_objects(scene, [target], settings, views=6, elevations=(-25.0, 25.0))
    result = base.run_blocking(run, runner=oracle_runner(scene, target, oracle, sc_module, tmp_path, requests))

    weight = pixels(bpy.data.images["Ball Scenecast.weight"])[..., 0]
    texture = pixels(result[target])[..., :3]
    seen = weight > 0
    assert result.coverage["Ball"] > 0.95
    assert psnr(texture[seen], known[seen]) >= 28.0

    assert "init" not in requests[0].images and requests[0].params.get("preset") is None  # view 1 generates
    for request in requests[1:]:
        assert request.params["preset"]["stages"][0]["type"] == "inpaint"
        init = request.images["init"].astype(np.float32) / 255.0
        keep = request.images["mask"][..., 0] == 0  # black: already well covered, kept
        assert keep.any() and (~keep).any()
        truth = tmp_path / f"{request.name}.png"
        rendered = sc_module("core.png").decode_png(truth.read_bytes()).astype(np.float32) / 255.0
        inner = keep & ~_grow(~keep, 1)  # off the mask border
        assert inner.sum() > 50 and psnr(init[inner], rendered[inner]) >= 25.0, request.name
    assert not [o for o in scene.objects if o.name.startswith("Scenecast View")]
    assert oracle.hide_render and not target.hide_render


def _grow(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


def test_a_failing_job_removes_the_rig_and_hides_nothing_while_a_job_runs(oracle_scene, sc_module, tmp_path):
    """Other objects are hidden only around each render: while a job runs (the user may save the file
    then) every object is as the user left it; a failing job removes the rig."""
    scene, target, oracle, _ = oracle_scene
    texturing = sc_module("features.texturing")
    base = sc_module("features.base")
    remote_job = sc_module("core.remote_job")
    settings = texturing.TextureSettings(
        base_params={"prompt": "x", "seed": 0, "width": SIZE, "height": SIZE, "preview_every": 0},
        request_fields={"server": "http://127.0.0.1:1", "output_dir": str(tmp_path)},
        texture_size=(TEX, TEX), mode="sequential",
    )
    other = uv_sphere(scene, "Bystander", location=(5, 0, 0))

    hidden_during_jobs = []

    def failing(request, **kwargs):
        hidden_during_jobs.extend(o.name for o in scene.objects if o.hide_render)
        raise remote_job.JobFailed("the model ran out of memory", "use a smaller size")

    before = {o.name for o in scene.objects}
    with pytest.raises(remote_job.JobFailed, match="out of memory"):
        base.run_blocking(texturing.texture_objects(scene, [target], settings, views=3), runner=failing)
    assert hidden_during_jobs == ["Oracle"], "only what the user hid is hidden while a job runs"
    assert {o.name for o in scene.objects} == before
    assert not other.hide_render and oracle.hide_render  # restored to what each was
    assert not [c for c in bpy.data.cameras if c.name.startswith("Scenecast View")]
