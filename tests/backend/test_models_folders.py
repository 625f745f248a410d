"""Models folders: ComfyUI and A1111/Forge layouts built here with tiny real-format .safetensors files
(the real key names, tiny shapes), classified from their headers, listed, and loadable by file name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from _ldm import sd15_single_file
from _server import ROOT, start_server
from _tiny import RecordingProgress
from backend.models import ModelManager, ModelNotFound, UnsafeCheckpoint, UnsupportedModel
from backend.models.header import HeaderError, classify_file
from backend.models.tiny import build_tiny_base, build_tiny_controlnet
from backend.pipelines import run_job
from backend.spec import JobSpec


def tensors(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {k: torch.zeros(shape) for k, shape in shapes.items()}


def write(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


SDXL_CKPT = {"conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
             "conditioner.embedders.1.model.positional_embedding": (77, 8),
             "model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3),
             "model.diffusion_model.label_emb.0.0.weight": (8, 16),
             "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (8, 2048),
             "first_stage_model.decoder.conv_in.weight": (8, 4, 3, 3)}
LDM_CONTROLNET = {"control_model.input_hint_block.0.weight": (16, 3, 3, 3),
                  "control_model.input_blocks.0.0.weight": (8, 4, 3, 3),
                  "control_model.zero_convs.0.0.weight": (8, 8, 1, 1), "control_model.time_embed.0.weight": (8, 8)}
KOHYA_SD15_LORA = {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 768),
                   "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": (8, 4),
                   "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha": ()}
KOHYA_SDXL_LORA = {"lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (4, 1280),
                   "lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": (1280, 4)}
VAE_SD = {"encoder.conv_in.weight": (8, 3, 3, 3), "decoder.conv_in.weight": (8, 4, 3, 3),
          "quant_conv.weight": (8, 8, 1, 1), "post_quant_conv.weight": (4, 4, 1, 1)}
VAE_FLUX = {"encoder.conv_in.weight": (8, 3, 3, 3), "decoder.conv_in.weight": (8, 16, 3, 3)}
FLUX_CKPT = {"model.diffusion_model.double_blocks.0.img_attn.qkv.weight": (12, 4),
             "model.diffusion_model.img_in.weight": (4, 64)}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("folders")
    comfy = root / "ComfyUI"
    m = comfy / "models"
    write(m / "checkpoints" / "tiny-sd15.safetensors", sd15_single_file(build_tiny_base()))
    write(m / "checkpoints" / "xl" / "juggernaut-tiny.safetensors", tensors(SDXL_CKPT))  # subfolders are read
    write(m / "checkpoints" / "misfiled-lora.safetensors", tensors(KOHYA_SD15_LORA))  # header wins over folder
    write(m / "checkpoints" / "flux-dev.safetensors", tensors(FLUX_CKPT))
    (m / "checkpoints" / "old-model.ckpt").write_bytes(b"\x80\x04\x95 pickle bytes")
    (m / "checkpoints" / "broken.safetensors").write_bytes(b"\xff" * 16)
    write(m / "controlnet" / "control_sd15_depth.safetensors", tensors(LDM_CONTROLNET))
    write(m / "loras" / "watercolor.safetensors", tensors(KOHYA_SD15_LORA))
    write(m / "vae" / "vae-ft-mse.safetensors", tensors(VAE_SD))
    a1111 = root / "stable-diffusion-webui"
    m = a1111 / "models"
    write(m / "Stable-diffusion" / "anime-xl.safetensors", tensors(SDXL_CKPT))
    write(m / "ControlNet" / "control_v11p_sd15_canny.safetensors",
          build_tiny_controlnet("canny").state_dict())  # diffusers-format ControlNet file
    write(m / "Lora" / "detail-xl.safetensors", tensors(KOHYA_SDXL_LORA))
    write(m / "VAE" / "ae.safetensors", tensors(VAE_FLUX))
    return {"comfy": comfy, "a1111_models": a1111 / "models"}


@pytest.fixture
def with_folders(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("SCENECAST_MODELS_FOLDERS", os.pathsep.join(map(str, folders.values())))
    return folders


def by_id(models: list[dict]) -> dict[str, dict]:
    return {m["id"]: m for m in models if m.get("source") == "folder"}


EXPECTED = {  # id -> (kind, family, layout, runnable)
    "tiny-sd15": ("base", "sd15", "comfyui", True), "juggernaut-tiny": ("base", "sdxl", "comfyui", True),
    "misfiled-lora": ("lora", "sd15", "comfyui", True), "flux-dev": ("base", "flux", "comfyui", False),
    "control_sd15_depth": ("controlnet", "sd15", "comfyui", True), "watercolor": ("lora", "sd15", "comfyui", True),
    "vae-ft-mse": ("vae", "sd", "comfyui", True), "anime-xl": ("base", "sdxl", "a1111", True),
    "control_v11p_sd15_canny": ("controlnet", "sd15", "a1111", True), "detail-xl": ("lora", "sdxl", "a1111", True),
    "ae": ("vae", "flux", "a1111", False),
}


def test_both_layouts_are_listed_with_family_and_kind_from_the_headers(with_folders: dict[str, Path]) -> None:
    listed = by_id(ModelManager(device="cpu").list_models())
    assert {k: (v["kind"], v["family"], v["layout"], v["runnable"]) for k, v in listed.items()} == EXPECTED
    assert listed["tiny-sd15"]["path"].endswith("checkpoints/tiny-sd15.safetensors")
    # the pickle and the unreadable file are not offered
    assert "old-model" not in listed and "broken" not in listed


def test_a_broken_header_is_a_clear_error(folders: dict[str, Path]) -> None:
    with pytest.raises(HeaderError, match="not a safetensors file"):
        classify_file(folders["comfy"] / "models" / "checkpoints" / "broken.safetensors")


def test_a_single_file_checkpoint_loads_by_its_name(with_folders: dict[str, Path], tiny_folder: Path) -> None:
    manager = ModelManager(device="cpu", single_file_configs={"sd15": tiny_folder})
    manager.check("tiny-sd15")
    manager.check("tiny-sd15.safetensors")
    manager.check("control_v11p_sd15_canny", "controlnet")
    manager.check("watercolor", "lora")
    base = manager.base("tiny-sd15")
    assert (base.id, base.family, base.source) == ("tiny-sd15", "sd15", "single_file")
    spec = JobSpec.model_validate({"model": "tiny-sd15", "prompt": "p", "width": 64, "height": 64, "steps": 2,
                                   "stages": [{"type": "generate"}]})
    by_name = run_job(spec, {}, manager, RecordingProgress()).images[0]
    builtin = run_job(spec.model_copy(update={"model": "builtin:tiny"}), {}, manager, RecordingProgress()).images[0]
    assert np.array_equal(by_name, builtin)  # the same weights as builtin:tiny, found by file name


def test_names_that_cannot_be_used_say_why(with_folders: dict[str, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    manager = ModelManager(device="cpu")
    with pytest.raises(UnsafeCheckpoint, match="pickle"):
        manager.check("old-model")
    with pytest.raises(ModelNotFound, match="is a lora, not a base"):
        manager.check("watercolor")
    with pytest.raises(UnsupportedModel, match="flux"):
        manager.check("flux-dev")
    write(tmp_path / "juggernaut-tiny.safetensors", tensors(SDXL_CKPT))  # a second file with the same stem
    monkeypatch.setenv("SCENECAST_MODELS_FOLDERS",
                       os.pathsep.join([*map(str, with_folders.values()), str(tmp_path)]))
    with pytest.raises(ModelNotFound, match="several") as info:
        manager.check("juggernaut-tiny")
    assert str(tmp_path) in info.value.message and "full path" in info.value.fix


def test_serve_flag_lists_the_folder_over_http(folders: dict[str, Path]) -> None:
    server = start_server(args=("--models-folder", str(folders["comfy"])))
    try:
        status, body = server.json("GET", "/v1/models")
        assert status == 200
        listed = by_id(body["models"])
        assert set(listed) == {k for k, v in EXPECTED.items() if v[2] == "comfyui"}
        assert listed["control_sd15_depth"]["kind"] == "controlnet"
    finally:
        server.stop()


def test_a_missing_models_folder_is_refused_before_anything_loads(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "backend", "serve", "--port", "0", "--models-folder",
                           str(tmp_path / "nope")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"--models-folder {tmp_path / 'nope'}: no such folder" in proc.stderr and "fix:" in proc.stderr
