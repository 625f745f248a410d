"""The other architectures the denoise path serves, at tiny size: SDXL (two text encoders, pooled
embeddings, size conditioning; its ControlNets) and 9-channel inpainting UNets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny import RecordingProgress, save_tiny_diffusers
from backend.models import ModelManager
from backend.models.tokenizers import byte_level_vocab, make_tokenizer
from backend.pipelines import run_job
from backend.spec import JobSpec

XL_UNET = dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
               down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
               attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
               addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
               cross_attention_dim=64, norm_num_groups=32)


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SDXL-shaped diffusers folder: CLIP-L-like + bigG-like (with projection) encoders, 32 wide each."""
    from diffusers import ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from backend.models.tiny import tiny_text_config

    folder = save_tiny_diffusers(tmp_path_factory.mktemp("tiny-sdxl"))
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**XL_UNET)
    unet.save_pretrained(folder / "unet")
    CLIPTextModel(tiny_text_config()).save_pretrained(folder / "text_encoder")
    CLIPTextModelWithProjection(tiny_text_config()).save_pretrained(folder / "text_encoder_2")
    vocab, merges = byte_level_vocab()
    make_tokenizer(vocab, merges, pad_token="!").save_pretrained(folder / "tokenizer_2")
    index = json.loads((folder / "model_index.json").read_text())
    index.update(_class_name="StableDiffusionXLPipeline", force_zeros_for_empty_prompt=True,
                 text_encoder_2=["transformers", "CLIPTextModelWithProjection"], tokenizer_2=["transformers", "CLIPTokenizer"])
    (folder / "model_index.json").write_text(json.dumps(index))
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 16, 32))
    with torch.no_grad():
        for conv in [*cn.controlnet_down_blocks, cn.controlnet_mid_block]:
            conv.weight.normal_(0, 0.1)
    cn.save_pretrained(folder.parent / "tiny-sdxl-controlnet")
    return folder


def job(model: str, stages: list[dict], **kw) -> JobSpec:  # noqa: ANN003
    return JobSpec.model_validate({"model": model, "prompt": "a tower", "width": 64, "height": 64, "steps": 3,
                                   "seed": 1, "stages": stages, **kw})


def test_sdxl_generate_with_controlnet_and_refine(tiny_sdxl: Path) -> None:
    manager = ModelManager(device="cpu")
    base = manager.base(str(tiny_sdxl))
    assert base.family == "sdxl" and len(base.text_encoders) == 2 and base.force_zeros_for_empty_prompt
    cn = str(tiny_sdxl.parent / "tiny-sdxl-controlnet")
    images = {"c": np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)}
    plain = run_job(job(str(tiny_sdxl), [{"type": "generate"}]), images, manager, RecordingProgress()).images[0]
    spec = job(str(tiny_sdxl), [{"type": "generate", "controlnets": [{"image": "c", "model": cn}]},
                                {"type": "img2img", "strength": 0.5}])
    result = run_job(spec, images, manager, RecordingProgress())
    assert result.info["stages"][0]["family"] == "sdxl"
    assert not np.array_equal(plain, result.images[0])
    negative = run_job(job(str(tiny_sdxl), [{"type": "generate"}], negative_prompt="blurry"), images, manager,
                       RecordingProgress()).images[0]
    assert not np.array_equal(plain, negative)  # empty negative = zeros, a real one is encoded


def test_sd15_controlnet_on_sdxl_is_refused(tiny_sdxl: Path) -> None:
    from backend.models import UnsupportedModel

    images = {"c": np.zeros((64, 64, 3), np.uint8)}
    spec = job(str(tiny_sdxl), [{"type": "generate", "controlnets": [{"image": "c", "model": "builtin:tiny-controlnet-depth"}]}])
    with pytest.raises(UnsupportedModel, match="does not fit"):
        run_job(spec, images, ModelManager(device="cpu"), RecordingProgress())


def test_nine_channel_inpainting_unet(tmp_path: Path, tiny_folder: Path) -> None:
    import shutil

    from diffusers import UNet2DConditionModel

    from backend.models.tiny import UNET

    folder = tmp_path / "tiny-inpaint"
    shutil.copytree(tiny_folder, folder)
    torch.manual_seed(0)
    UNet2DConditionModel(**{**UNET, "in_channels": 9}).save_pretrained(folder / "unet")
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64, 3), np.uint8)
    mask[8:40, 8:40] = 255
    spec = job(str(folder), [{"type": "inpaint", "image": "photo", "mask": "mask"}])
    manager = ModelManager(device="cpu")
    assert manager.base(str(folder)).is_inpainting
    result = run_job(spec, {"photo": photo, "mask": mask}, manager, RecordingProgress())
    out = result.images[0]
    keep = mask[:, :, 0] == 0
    assert np.array_equal(out[keep], photo[keep]) and not np.array_equal(out[~keep], photo[~keep])
    assert "9-channel inpainting UNet" in result.info["stages"][0]["notes"]


def test_vae_is_upcast_where_fp16_would_overflow() -> None:
    from backend.models.loading import _vae_dtype

    assert _vae_dtype({"force_upcast": True}, torch.float16) == torch.float32
    assert _vae_dtype({"force_upcast": True}, torch.bfloat16) == torch.bfloat16
    assert _vae_dtype({}, torch.float16) == torch.float16


@pytest.mark.parametrize("negative", ["", "blurry"])
def test_sdxl_matches_stock_sdxl_controlnet_pipeline(tiny_sdxl: Path, negative: str) -> None:
    """Two encoders' penultimate states, pooled embeddings, time ids and the zero negative for an empty
    negative prompt: our path must give diffusers' SDXL ControlNet pipeline's pixels (to rounding)."""
    from diffusers import StableDiffusionXLControlNetPipeline

    from backend.pipelines.schedulers import make_scheduler

    manager = ModelManager(device="cpu")
    base = manager.base(str(tiny_sdxl))
    cn_id = str(tiny_sdxl.parent / "tiny-sdxl-controlnet")
    net = manager.controlnet(cn_id)
    control = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    spec = job(str(tiny_sdxl), [{"type": "generate", "controlnets": [{"image": "c", "model": cn_id, "weight": 0.7}]}],
               negative_prompt=negative, guidance=5.0, scheduler="euler")
    ours = run_job(spec, {"c": control}, manager, RecordingProgress()).images[0]
    pipe = StableDiffusionXLControlNetPipeline(
        vae=base.vae, text_encoder=base.text_encoders[0], text_encoder_2=base.text_encoders[1],
        tokenizer=base.tokenizers[0], tokenizer_2=base.tokenizers[1], unet=base.unet, controlnet=net,
        scheduler=make_scheduler("euler", base.scheduler_config), force_zeros_for_empty_prompt=True,
        add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    stock = pipe("a tower", negative_prompt=negative or None, image=torch.from_numpy(control).permute(2, 0, 1)[None] / 255.0,
                 height=64, width=64, num_inference_steps=3, guidance_scale=5.0, controlnet_conditioning_scale=0.7,
                 generator=torch.Generator().manual_seed(1), output_type="np").images[0]
    assert np.abs(ours.astype(int) - (stock * 255).round().astype(int)).max() <= 1
