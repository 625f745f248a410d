"""The add-on's search lists and checks for GGUF transformers in models folders (core.model_list,
core.preflight): labelled with family and quantization, offered the ControlNets of their family, passed
by the offline check, and refused before rendering when the backend lists them as not runnable. The
entries are the backend's ``/v1/models`` rows as tests/backend/test_gguf_folders.py gets them."""

from __future__ import annotations

import pytest

from addon.core import model_list, preflight

SERVER = "http://127.0.0.1:1"  # never contacted: the list is stored, not fetched
FLUX_GGUF = {"id": "flux1-dev-Q8_0", "kind": "base", "family": "flux", "source": "folder", "installed": True,
             "path": "/c/models/unet/flux1-dev-Q8_0.gguf", "layout": "comfyui", "format": "gguf",
             "runnable": True, "quantization": "Q8_0", "companion": "black-forest-labs/FLUX.1-dev"}
SCHNELL_GGUF = {**FLUX_GGUF, "id": "flux1-schnell-Q4_K", "family": "flux-schnell", "quantization": "Q4_K"}
QWEN_GGUF = {**FLUX_GGUF, "id": "qwen-image-Q5_K", "family": "qwen", "quantization": "Q5_K"}
LLM_GGUF = {**FLUX_GGUF, "id": "llama-3-8b", "kind": "unknown", "family": "unknown", "quantization": "Q4_K",
            "runnable": False, "reason": "not a diffusion transformer Scenecast knows"}
SD15 = {"id": "dreamshaper_8", "kind": "base", "family": "sd15", "source": "folder", "installed": True,
        "format": "safetensors", "runnable": True}
CONTROLNETS = [
    {"id": "control_v11f1p_sd15_depth", "kind": "controlnet", "family": "sd15", "source": "folder", "installed": True},
    {"id": "Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro-2.0", "kind": "controlnet", "family": "flux",
     "source": "hub", "installed": True},
    {"id": "flux-depth-xlabs", "kind": "controlnet", "family": "flux", "source": "folder", "installed": True},
    {"id": "InstantX/Qwen-Image-ControlNet-Union", "kind": "controlnet", "family": "qwen", "source": "hub",
     "installed": True},
]
MODELS = [FLUX_GGUF, SCHNELL_GGUF, QWEN_GGUF, LLM_GGUF, SD15, *CONTROLNETS]


@pytest.fixture(autouse=True)
def stored() -> None:
    model_list.store(SERVER, MODELS)


def test_gguf_models_are_listed_with_family_and_quantization() -> None:
    items = dict(model_list.search_items(SERVER, "base"))
    assert items["flux1-dev-Q8_0"] == "FLUX.1 [dev] · GGUF Q8_0 · models folder"
    assert items["flux1-schnell-Q4_K"] == "FLUX.1 [schnell] · GGUF Q4_K · models folder"
    assert items["qwen-image-Q5_K"] == "Qwen-Image · GGUF Q5_K · models folder"
    assert items["dreamshaper_8"] == "SD 1.5 · models folder"
    assert "llama-3-8b" not in items  # listed by the backend as kind "unknown": no base model


def test_a_flux_gguf_is_offered_flux_controlnets_as_any_flux_model() -> None:
    flux = [i for i, _ in model_list.search_items(SERVER, "controlnet", family=model_list.family_of(
        "flux1-dev-Q8_0", SERVER))]
    assert flux == ["Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro-2.0", "flux-depth-xlabs"]
    by_name = model_list.search_items(SERVER, "controlnet", family=preflight.guess_family("flux1-dev.safetensors"))
    assert [i for i, _ in by_name] == flux  # the same list a FLUX safetensors (by its name) gets
    schnell = model_list.search_items(SERVER, "controlnet", family=model_list.family_of("flux1-schnell-Q4_K", SERVER))
    assert [i for i, _ in schnell] == flux  # schnell uses FLUX.1's ControlNets
    assert [i for i, _ in model_list.search_items(SERVER, "controlnet", family="qwen")] == [
        "InstantX/Qwen-Image-ControlNet-Union"]
    assert len(model_list.search_items(SERVER, "controlnet")) == 4  # base family unknown: every one


def test_the_checks_before_rendering_accept_a_gguf_offline() -> None:
    assert preflight.check_installed(MODELS, "flux1-dev-Q8_0", ["flux-depth-xlabs"], offline=True) == []
    assert preflight.side_multiple(model_list.family_of("flux1-dev-Q8_0", SERVER)) == 16
    # a path to a .gguf on the backend's machine is left to the backend
    assert preflight.check_installed(MODELS, "models/unet/other.gguf", [], offline=True) == []


def test_a_gguf_the_backend_cannot_run_is_refused_before_rendering_with_its_reason() -> None:
    with pytest.raises(preflight.ModelUnusable, match="llama-3-8b.*not a diffusion transformer") as err:
        preflight.check_installed(MODELS, "llama-3-8b", [], offline=False)
    assert "pick another model" in err.value.fix


def test_a_folder_file_the_backend_cannot_load_says_so_in_the_list_and_the_checks() -> None:
    flux_cn_file = {"id": "flux-canny-single", "kind": "controlnet", "family": "flux", "source": "folder",
                    "installed": True, "format": "safetensors", "runnable": False}
    model_list.store(SERVER, [*MODELS, flux_cn_file])
    items = dict(model_list.search_items(SERVER, "controlnet", family="flux"))
    assert items["flux-canny-single"] == "FLUX.1 [dev] · models folder · not usable: the backend cannot load this file"
    with pytest.raises(preflight.ModelUnusable, match="cannot load this flux file"):
        preflight.check_installed(MODELS + [flux_cn_file], "flux1-dev-Q8_0", ["flux-canny-single"], offline=True)
