"""The panel's model options reach the job (issue 13): the installed-model search lists, each ControlNet
unit's model, LoRAs with weights, the sampler; the default size from the render resolution; presets
saved to the user's folder and listed with the shipped ones."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

from e2e_support import ADDON_MODULE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "addon_core"))
from fake_backend import FakeBackend  # noqa: E402

bpy = pytest.importorskip("bpy")

MODELS = [
    {"id": "builtin:tiny", "kind": "base", "family": "sd15", "source": "builtin", "installed": True},
    {"id": "dreamshaper_8.safetensors", "kind": "base", "family": "sd15", "source": "folder", "installed": True},
    {"id": "flux1-dev.safetensors", "kind": "base", "family": "flux", "source": "folder", "installed": True},
    {"id": "control_v11f1p_sd15_depth.safetensors", "kind": "controlnet", "family": "sd15", "source": "folder",
     "installed": True},
    {"id": "watercolor.safetensors", "kind": "lora", "family": "sd15", "source": "folder", "installed": True},
    {"id": "vae-ft-mse-840000.safetensors", "kind": "vae", "family": "sd15", "source": "folder", "installed": True},
]


def addon_module(name: str):
    return importlib.import_module(f"{ADDON_MODULE}.{name}")


@pytest.fixture
def fake(prefs):
    server = FakeBackend()
    server.models = [dict(m) for m in MODELS]
    prefs.server_url = server.url
    yield server
    server.stop()


def spec_of(request):
    jobspec = addon_module("core.jobspec")
    return jobspec.build_job_spec(model=request.model or request.default_model, units=request.units, **request.params)


def test_search_lists_offer_the_backends_installed_models_without_blocking(scene, fake):
    model_list = addon_module("core.model_list")
    props = addon_module("ui.properties")
    s = scene.scenecast
    first = props._search_models(s, bpy.context, "")  # nothing fetched yet: answers at once, fetch starts
    assert ("builtin:tiny", "installed base") in first
    model_list.refresh(fake.url, wait=True)
    assert [i for i, _ in props._search_models(s, bpy.context, "dream")] == ["dreamshaper_8.safetensors"]
    assert [i for i, _ in props._search_controlnets(s.units.add(), bpy.context, "")] == [
        "control_v11f1p_sd15_depth.safetensors"]
    assert [i for i, _ in props._search_loras(None, bpy.context, "water")] == ["watercolor.safetensors"]
    # a hub id that is not installed can still be typed
    s.model = "someone/some-model"
    assert s.model == "someone/some-model"


def test_unit_models_loras_and_the_sampler_reach_the_job_spec(api, scene, fake):
    s = scene.scenecast
    unit = s.units.add()
    unit.type, unit.model = "depth", "control_v11f1p_sd15_depth.safetensors"
    edges = s.units.add()
    edges.type = "edges"  # no model: the family's default
    lora = s.loras.add()
    lora.name, lora.weight = "watercolor.safetensors", 0.7
    off = s.loras.add()
    off.name, off.enabled = "unused.safetensors", False
    s.scheduler = "dpmpp_2m_karras"
    request = api.prepare(scene, prompt="x", server=fake.url, model="dreamshaper_8.safetensors", width=64, height=64)
    spec = spec_of(request)
    assert spec["scheduler"] == "dpmpp_2m_karras"
    assert spec["loras"] == [{"name": "watercolor.safetensors", "weight": pytest.approx(0.7)}]
    nets = spec["stages"][0]["controlnets"]
    assert nets[0]["model"] == "control_v11f1p_sd15_depth.safetensors" and "model" not in nets[1]
    # api arguments override the scene's
    request = api.prepare(scene, prompt="x", server=fake.url, model="dreamshaper_8.safetensors", width=64, height=64,
                          scheduler="ddim", loras=[{"name": "watercolor.safetensors", "weight": 1.2}])
    spec = spec_of(request)
    assert spec["scheduler"] == "ddim" and spec["loras"] == [{"name": "watercolor.safetensors", "weight": 1.2}]


def test_the_default_size_follows_the_render_resolution_until_the_user_sets_one(api, scene, fake):
    s = scene.scenecast
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 1920, 1080, 100
    assert s.size_from_render
    request = api.prepare(scene, prompt="x", server=fake.url, model="dreamshaper_8.safetensors")
    assert (request.params["width"], request.params["height"]) == (1024, 576)  # SD 1.5: longest side 1024
    addon_module("core.model_list").refresh(fake.url, wait=True)
    settings = addon_module("features.settings")
    flux = settings.resolve(scene, prompt="x", server=fake.url, model="flux1-dev.safetensors")
    assert (flux.width, flux.height) == (1536, 864)  # flow family: 1536, multiples of 16
    s.width = 640  # the user sets a size: it is used from now on
    assert not s.size_from_render
    request = api.prepare(scene, prompt="x", server=fake.url, model="dreamshaper_8.safetensors")
    assert (request.params["width"], request.params["height"]) == (640, s.height)


def test_a_saved_preset_goes_to_the_user_folder_and_is_listed_with_the_shipped_ones(api, scene, tmp_path):
    jobspec = addon_module("core.jobspec")
    props = addon_module("ui.properties")
    user = Path(jobspec.user_preset_dir())
    extension = Path(addon_module("core").__file__).resolve().parents[1]
    assert extension not in user.resolve().parents  # not inside the installed extension
    s = scene.scenecast
    s.negative_prompt, s.steps, s.scheduler = "blurry", 12, "unipc"
    unit = s.units.add()
    unit.type, unit.weight = "edges", 0.4
    path = Path(api.save_preset(scene, "my look", description="mine"))
    try:
        assert path.parent == user and not list(user.glob("*.tmp"))
        data = json.loads(path.read_text())
        assert data["steps"] == 12 and data["scheduler"] == "unipc" and data["negative_prompt"] == "blurry"
        assert data["stages"][0]["controlnets"][0]["type"] == "edges"
        items = {i[0]: i[2] for i in props._preset_items(s, bpy.context)}
        assert "my look" in items and "yours" in items["my look"]
        assert "texture-depth-edges" in items and "yours" not in items["texture-depth-edges"]
        errors = addon_module("core.errors")
        with pytest.raises(errors.ScenecastError, match="exists already"):
            api.save_preset(scene, "my look")
        with pytest.raises(errors.ScenecastError, match="shipped preset"):
            api.save_preset(scene, "texture-depth-edges")
        s.preset = "my look"
        assert s.preset == "my look"
        assert jobspec.load_preset("my look")["steps"] == 12
    finally:
        path.unlink()


# -- VAE (issue 13)
def test_the_vae_is_searched_set_in_the_panel_and_overridden_by_the_api(api, scene, fake):
    model_list = addon_module("core.model_list")
    props = addon_module("ui.properties")
    model_list.refresh(fake.url, wait=True)
    assert [i for i, _ in props._search_vaes(None, bpy.context, "mse")] == ["vae-ft-mse-840000.safetensors"]
    s = scene.scenecast
    request = api.prepare(scene, prompt="x", server=fake.url, model="builtin:tiny", width=64, height=64)
    assert "vae" not in spec_of(request)  # empty: the model's own
    s.vae = "vae-ft-mse-840000.safetensors"
    request = api.prepare(scene, prompt="x", server=fake.url, model="builtin:tiny", width=64, height=64)
    assert spec_of(request)["vae"] == "vae-ft-mse-840000.safetensors"
    request = api.prepare(scene, prompt="x", server=fake.url, model="builtin:tiny", width=64, height=64,
                          vae="org/other-vae")
    assert spec_of(request)["vae"] == "org/other-vae"
