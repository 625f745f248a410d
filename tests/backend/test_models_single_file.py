"""Single-file .safetensors checkpoints load offline with local configs; shipped configs and tokenizer
are the real SD1.5/SDXL ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from _ldm import sd15_single_file
from _tiny import RecordingProgress
from backend.models import ModelManager, UnsupportedModel
from backend.models.tiny import build_tiny_base, build_tiny_controlnet
from backend.pipelines import run_job
from backend.spec import JobSpec


@pytest.fixture(scope="module")
def single_file(tmp_path_factory: pytest.TempPathFactory, tiny_folder: Path) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny-sd15.safetensors"
    save_file(sd15_single_file(build_tiny_base()), str(path))
    return path


@pytest.fixture(scope="module")
def tiny_configs(tiny_folder: Path) -> dict[str, Path]:
    """The tiny model's diffusers config folder stands in for the shipped full-size SD1.5 configs."""
    return {"sd15": tiny_folder}


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_single_file_loads_offline_with_local_config(single_file: Path, tiny_configs, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    manager = ModelManager(device="cpu", single_file_configs=tiny_configs)
    manager.check(str(single_file))
    loaded = manager.base(str(single_file))
    ref = build_tiny_base()
    assert loaded.source == "single_file" and loaded.family == "sd15"
    assert_same_weights(loaded.unet, ref.unet)
    assert_same_weights(loaded.vae, ref.vae)
    assert_same_weights(loaded.text_encoders[0], ref.text_encoders[0])
    spec = JobSpec.model_validate({"model": str(single_file), "prompt": "p", "width": 64, "height": 64, "steps": 2,
                                   "stages": [{"type": "generate"}]})
    from_file = run_job(spec, {}, manager, RecordingProgress()).images[0]
    builtin = run_job(spec.model_copy(update={"model": "builtin:tiny"}), {}, manager, RecordingProgress()).images[0]
    assert np.array_equal(from_file, builtin)


def test_single_file_controlnet_in_diffusers_layout(tmp_path: Path) -> None:
    net = build_tiny_controlnet("canny")
    path = tmp_path / "cn.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    cfg = tmp_path / "cfg"
    net.save_config(cfg / "controlnet")
    manager = ModelManager(device="cpu", single_file_configs={"sd15": cfg})
    manager.check(str(path), "controlnet")
    assert_same_weights(manager.controlnet(str(path)), net)
    with pytest.raises(Exception, match="controlnet, not a base"):
        manager.check(str(path), "base")


def test_shipped_configs_have_the_real_architectures() -> None:
    """Parameter counts of the published SD1.5 / SDXL components, built on the meta device (no memory)."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from backend.models.configs import config_folder

    def count(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    def load(folder: Path, sub: str) -> dict:
        return json.loads((folder / sub / "config.json").read_text())

    sd15, sdxl = config_folder("sd15"), config_folder("sdxl")
    with init_empty_weights():
        assert count(UNet2DConditionModel.from_config(load(sd15, "unet"))) == 859_520_964
        assert count(AutoencoderKL.from_config(load(sd15, "vae"))) == 83_653_863
        assert count(CLIPTextModel(CLIPTextConfig(**load(sd15, "text_encoder")))) == 123_060_480
        assert count(ControlNetModel.from_config(load(sd15, "controlnet"))) == 361_279_120
        assert count(UNet2DConditionModel.from_config(load(sdxl, "unet"))) == 2_567_463_684
        assert count(CLIPTextModelWithProjection(CLIPTextConfig(**load(sdxl, "text_encoder_2")))) == 694_659_840
    assert (config_folder("sd15", inpainting=True) / "unet" / "config.json").read_text().count('"in_channels": 9') == 1


def test_shipped_tokenizer_is_clips() -> None:
    from transformers import CLIPTokenizer

    from backend.models.configs import config_folder

    tok = CLIPTokenizer.from_pretrained(config_folder("sd15") / "tokenizer")
    assert len(tok) == 49408 and tok.model_max_length == 77
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    tok2 = CLIPTokenizer.from_pretrained(config_folder("sdxl") / "tokenizer_2")
    assert tok2.pad_token == "!"


def test_sd2_single_file_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "sd2.safetensors"
    save_file({"cond_stage_model.model.positional_embedding": torch.zeros(77, 4),
               "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)}, str(path))
    with pytest.raises(UnsupportedModel, match="2.x"):
        ModelManager(device="cpu").check(str(path))


def test_real_sd15_checkpoint_layout_converts_with_the_shipped_configs() -> None:
    """A full-size SD1.5 checkpoint's key layout (made on the meta device: no memory) converts back into
    exactly the parameters of models built from the shipped configs. Spot-checks keys every real
    SD1.5 .safetensors has, so the layout is the real one and not just our exporter's inverse."""
    from accelerate import init_empty_weights
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    from _ldm import unet_to_ldm, vae_to_ldm
    from backend.models.builtins import build_sd15_random
    from backend.models.configs import SD15_UNET, SD15_VAE

    with init_empty_weights():
        base = build_sd15_random()
    ckpt = {**unet_to_ldm(base.unet), **vae_to_ldm(base.vae)}
    for key in ["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
                "model.diffusion_model.input_blocks.9.0.op.weight", "model.diffusion_model.middle_block.1.proj_in.weight",
                "model.diffusion_model.output_blocks.2.1.conv.weight", "model.diffusion_model.output_blocks.5.2.conv.weight",
                "model.diffusion_model.output_blocks.11.1.proj_out.weight", "model.diffusion_model.out.2.weight",
                "first_stage_model.decoder.up.3.upsample.conv.weight", "first_stage_model.encoder.mid.attn_1.q.weight",
                "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight"]:
        assert key in ckpt, key
    assert tuple(ckpt["first_stage_model.encoder.mid.attn_1.q.weight"].shape) == (512, 512, 1, 1)
    unet = convert_ldm_unet_checkpoint(ckpt, dict(SD15_UNET))
    vae = convert_ldm_vae_checkpoint(ckpt, dict(SD15_VAE))
    assert set(unet) == set(base.unet.state_dict())
    assert set(vae) == set(base.vae.state_dict())
    assert tuple(vae["encoder.mid_block.attentions.0.to_q.weight"].shape) == (512, 512)
