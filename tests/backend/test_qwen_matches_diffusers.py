"""Our flow path on Qwen-Image against diffusers' stock QwenImagePipeline / QwenImageControlNetPipeline
on the same tiny weights, seed and scheduler: the same pixels to rounding (±1 of 255), with and without
true CFG. The stock pipelines are told the tiny byte-level tokenizer's template length (their 34 is
Qwen2.5-VL's tokenizer's). Guards Qwen-Image's particulars: the 3D VAE's per-channel normalisation, the template's
dropped tokens, the norm-rescaled CFG, the exponential time shift, ControlNet block samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _tiny import RecordingProgress
from backend.models import ModelManager
from backend.pipelines import run_job
from backend.pipelines.flux import pack
from backend.spec import JobSpec

QWEN = "builtin:tiny-qwen"
W, H = 96, 64


def _components(base):  # noqa: ANN001, ANN202
    from diffusers import FlowMatchEulerDiscreteScheduler

    return dict(scheduler=FlowMatchEulerDiscreteScheduler.from_config(base.scheduler_config), vae=base.vae,
                text_encoder=base.text_encoders[0], tokenizer=base.tokenizers[0], transformer=base.transformer)


def _ours(manager: ModelManager, guidance: float, units: list[dict], images: dict) -> np.ndarray:
    spec = JobSpec.model_validate({"model": QWEN, "prompt": "a red barn", "negative_prompt": "fog", "width": W,
                                   "height": H, "steps": 4, "seed": 42, "guidance": guidance,
                                   "stages": [{"type": "generate", "controlnets": units}]})
    return run_job(spec, images, manager, RecordingProgress()).images[0]


def _stock_kw(base, guidance: float) -> dict:  # noqa: ANN001
    return dict(prompt="a red barn", negative_prompt="fog", height=H, width=W, num_inference_steps=4,
                true_cfg_scale=guidance, max_sequence_length=base.extra["max_sequence_length"],
                generator=torch.Generator().manual_seed(42), output_type="np")


@pytest.mark.parametrize("guidance", [1.0, 4.0])
def test_generate_matches_stock_qwen_image_pipeline(guidance: float) -> None:
    from diffusers import QwenImagePipeline

    manager = ModelManager(device="cpu")
    base = manager.base(QWEN)
    ours = _ours(manager, guidance, [], {})
    pipe = QwenImagePipeline(**_components(base))
    pipe.prompt_template_encode_start_idx = base.extra["prompt_drop"]  # the tiny tokenizer's template length
    pipe.set_progress_bar_config(disable=True)
    stock = pipe(**_stock_kw(base, guidance)).images[0]
    assert ours.std() > 5
    assert np.abs(ours.astype(int) - (stock * 255).round().astype(int)).max() <= 1


@pytest.mark.parametrize("guidance", [1.0, 4.0])
def test_controlnet_generate_matches_stock_qwen_image_controlnet_pipeline(guidance: float) -> None:
    from diffusers import QwenImageControlNetPipeline

    manager = ModelManager(device="cpu")
    base = manager.base(QWEN)
    control = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    unit = {"image": "c", "type": "depth", "weight": 0.6, "start": 0.0, "end": 0.75}
    ours = _ours(manager, guidance, [unit], {"c": control})
    without = _ours(manager, guidance, [], {})
    # As for FLUX: diffusers draws the control image's VAE sample, then the noise, from one generator; we
    # draw the noise from its own (same seed): hand the stock pipeline our noise.
    noise = torch.randn((1, 16, H // 8, W // 8), generator=torch.Generator().manual_seed(42))
    pipe = QwenImageControlNetPipeline(**_components(base), controlnet=manager.controlnet("builtin:tiny-qwen-controlnet"))
    pipe.prompt_template_encode_start_idx = base.extra["prompt_drop"]
    pipe.set_progress_bar_config(disable=True)
    stock = pipe(**_stock_kw(base, guidance), control_image=torch.from_numpy(control).permute(2, 0, 1)[None] / 127.5 - 1,
                 controlnet_conditioning_scale=0.6, control_guidance_start=0.0, control_guidance_end=0.75,
                 latents=pack(noise)).images[0]
    assert np.abs(ours.astype(int) - without.astype(int)).max() > 10  # the ControlNet changed the image
    assert np.abs(ours.astype(int) - (stock * 255).round().astype(int)).max() <= 1
