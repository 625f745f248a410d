"""Family detection without loading: safetensors headers of single files (diffusers, BFL/ComfyUI and
Kohya key layouts), local diffusers folders (model_index.json) and hub ids; flow families load from
diffusers folders; their single-file transformers are refused with the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from _tiny import RecordingProgress
from backend.models import ModelManager, UnsupportedModel
from backend.models.builtins import BASES, CONTROLNETS
from backend.models.families import (classify_header, family_from_hub_id, family_from_model_index,
                                     read_safetensors_header)
from backend.pipelines import run_job
from backend.spec import JobSpec


def header_of(state: dict[str, torch.Tensor], prefix: str = "") -> dict:
    return {prefix + k: {"dtype": "F32", "shape": list(v.shape), "data_offsets": [0, 0]} for k, v in state.items()}


@pytest.mark.parametrize(("builtin", "family"), [("builtin:tiny-flux", "flux"), ("builtin:tiny-flux-schnell", "flux-schnell"),
                                                 ("builtin:tiny-zimage", "zimage"), ("builtin:tiny-qwen", "qwen")])
@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_transformer_headers_in_diffusers_layout(builtin: str, family: str, prefix: str) -> None:
    d = classify_header(header_of(BASES[builtin]().transformer.state_dict(), prefix))
    assert d is not None and (d.kind, d.family) == ("base", family)


@pytest.mark.parametrize(("net", "family", "note"), [("builtin:tiny-flux-controlnet-depth", "flux", ""),
                                                     ("builtin:tiny-flux-controlnet-union", "flux", "Union"),
                                                     ("builtin:tiny-zimage-controlnet", "zimage", ""),
                                                     ("builtin:tiny-qwen-controlnet", "qwen", ""),
                                                     ("builtin:tiny-sdxl-controlnet-union", "sdxl", "ControlNet Union")])
def test_controlnet_headers(net: str, family: str, note: str) -> None:
    d = classify_header(header_of(CONTROLNETS[net]().state_dict()))
    assert d is not None and (d.kind, d.family, d.note) == ("controlnet", family, note)


def test_bfl_comfyui_flux_layout_dev_schnell_and_fill() -> None:
    """Key names as BFL's reference code and ComfyUI's diffusion_models files have them."""
    common = {"img_in.weight": [3072, 64], "txt_in.weight": [3072, 4096], "time_in.in_layer.weight": [3072, 256],
              "vector_in.in_layer.weight": [3072, 768], "double_blocks.0.img_attn.qkv.weight": [9216, 3072],
              "single_blocks.0.linear1.weight": [21504, 3072], "final_layer.linear.weight": [64, 3072]}
    h = {k: {"dtype": "BF16", "shape": s, "data_offsets": [0, 0]} for k, s in common.items()}
    schnell = classify_header(h)
    dev = classify_header({**h, "guidance_in.in_layer.weight": {"dtype": "BF16", "shape": [3072, 256]}})
    fill = classify_header({**h, "guidance_in.in_layer.weight": {"shape": [3072, 256]}, "img_in.weight": {"shape": [3072, 384]}})
    assert (schnell.family, schnell.layout) == ("flux-schnell", "original")
    assert dev.family == "flux" and "Fill" in fill.note


def test_lora_headers_of_each_family(tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model_state_dict

    for builtin, family in [("builtin:tiny-flux", "flux"), ("builtin:tiny-zimage", "zimage"), ("builtin:tiny-qwen", "qwen")]:
        tr = BASES[builtin]().transformer
        tr.add_adapter(LoraConfig(r=2, target_modules=["to_q", "to_k"]))
        d = classify_header(header_of(get_peft_model_state_dict(tr), "transformer."))
        assert d is not None and (d.kind, d.family) == ("lora", family), builtin
    kohya = {"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": {"shape": [16, 3072]}}
    assert classify_header(kohya).family == "flux" and classify_header(kohya).layout == "kohya"


def test_sd_checkpoints_are_left_to_the_sd_classifier() -> None:
    from backend.models.tiny import build_tiny_base

    assert classify_header(header_of(build_tiny_base().unet.state_dict(), "model.diffusion_model.")) is None


def test_model_index_and_hub_ids() -> None:
    assert family_from_model_index({"_class_name": "FluxPipeline"}, {"guidance_embeds": True}) == "flux"
    assert family_from_model_index({"_class_name": "FluxPipeline"}, {"guidance_embeds": False}) == "flux-schnell"
    assert family_from_model_index({"_class_name": "ZImagePipeline"}) == "zimage"
    assert family_from_model_index({"_class_name": "QwenImagePipeline"}) == "qwen"
    assert family_from_model_index({"_class_name": "StableDiffusionXLPipeline"}) == "sdxl"
    assert family_from_hub_id("black-forest-labs/FLUX.1-schnell") == "flux-schnell"
    assert family_from_hub_id("someone/my-flux-finetune") == "flux"
    assert family_from_hub_id("black-forest-labs/FLUX.2-klein") is None
    assert family_from_hub_id("stabilityai/stable-diffusion-xl-base-1.0") is None


def _save_flow_folder(builtin: str, folder: Path, pipeline: str) -> Path:
    base = BASES[builtin]()
    base.transformer.save_pretrained(folder / "transformer")
    base.vae.save_pretrained(folder / "vae")
    subs = ["text_encoder", "text_encoder_2"][: len(base.text_encoders)]
    toks = ["tokenizer", "tokenizer_2"][: len(base.tokenizers)]
    for enc, sub in zip(base.text_encoders, subs):
        enc.save_pretrained(folder / sub)
    for tok, sub in zip(base.tokenizers, toks):
        tok.save_pretrained(folder / sub)
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(base.scheduler_config))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    return folder


@pytest.mark.parametrize(("builtin", "pipeline", "family"), [("builtin:tiny-flux-schnell", "FluxPipeline", "flux-schnell"),
                                                             ("builtin:tiny-zimage", "ZImagePipeline", "zimage")])
def test_flow_diffusers_folder_is_detected_and_runs(tmp_path: Path, builtin: str, pipeline: str, family: str) -> None:
    folder = _save_flow_folder(builtin, tmp_path / "model", pipeline)
    manager = ModelManager(device="cpu")
    assert manager.family(str(folder)) == family
    spec = JobSpec.model_validate({"model": str(folder), "prompt": "a barn", "width": 64, "height": 64, "steps": 2,
                                   "stages": [{"type": "generate"}]})
    result = run_job(spec, {}, manager, RecordingProgress())
    assert result.info["stages"][0]["family"] == family and result.images[0].std() > 5


def test_flow_single_file_transformer_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "flux1-schnell.safetensors"
    save_file({k: v.contiguous() for k, v in BASES["builtin:tiny-flux-schnell"]().transformer.state_dict().items()},
              str(path))
    assert read_safetensors_header(path)["x_embedder.weight"]["shape"] == [32, 64]
    manager = ModelManager(device="cpu")
    assert manager.family(str(path)) == "flux-schnell"
    with pytest.raises(UnsupportedModel) as err:
        manager.base(str(path))
    assert "black-forest-labs/FLUX.1-schnell" in err.value.fix


def test_sd_loras_are_not_taken_for_flow_loras(tmp_path: Path) -> None:
    from test_models_lora import make_lora

    header = read_safetensors_header(make_lora(tmp_path / "sd.safetensors"))
    assert classify_header(header) is None


def test_default_controlnets_of_the_flow_families() -> None:
    from backend.models.defaults import FLUX_UNION, default_controlnet

    assert default_controlnet("black-forest-labs/FLUX.1-dev", "flux", "depth") == FLUX_UNION
    assert default_controlnet("Qwen/Qwen-Image", "qwen", "canny") == "InstantX/Qwen-Image-ControlNet-Union"
    for family, unit_type in [("flux", "normal"), ("zimage", "depth"), ("qwen", "segmentation")]:
        with pytest.raises(UnsupportedModel) as err:
            default_controlnet("org/x", family, unit_type)
        assert "`model`" in err.value.fix
