"""Our denoise path against diffusers' own StableDiffusionControlNetPipeline on the same tiny model:
same prompt, seed, scheduler and ControlNet weight must give the same pixels (to rounding). This is
what keeps "one clear denoise path of our own" honest: CFG order, noise, ControlNet scaling, VAE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _tiny import RecordingProgress
from backend.models import ModelManager
from backend.pipelines import run_job
from backend.pipelines.schedulers import make_scheduler
from backend.spec import JobSpec


@pytest.mark.parametrize("scheduler", ["euler_a", "dpmpp_2m", "ddim"])
@pytest.mark.parametrize("mode", ["balanced", "control"])
def test_generate_matches_stock_controlnet_pipeline(scheduler: str, mode: str) -> None:
    from diffusers import StableDiffusionControlNetPipeline

    manager = ModelManager(device="cpu")
    base = manager.base("builtin:tiny")
    net = manager.controlnet("builtin:tiny-controlnet-depth")
    control = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    spec = JobSpec.model_validate({
        "model": "builtin:tiny", "prompt": "a red barn", "negative_prompt": "fog", "width": 64, "height": 64,
        "steps": 5, "seed": 42, "guidance": 6.0, "scheduler": scheduler,
        "stages": [{"type": "generate", "controlnets": [{"image": "c", "type": "depth", "weight": 0.8, "mode": mode}]}]})
    ours = run_job(spec, {"c": control}, manager, RecordingProgress()).images[0]

    pipe = StableDiffusionControlNetPipeline(
        vae=base.vae, text_encoder=base.text_encoders[0], tokenizer=base.tokenizers[0], unet=base.unet, controlnet=net,
        scheduler=make_scheduler(scheduler, base.scheduler_config), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    stock = pipe("a red barn", negative_prompt="fog", image=torch.from_numpy(control).permute(2, 0, 1)[None] / 255.0,
                 height=64, width=64, num_inference_steps=5, guidance_scale=6.0, controlnet_conditioning_scale=0.8,
                 guess_mode=mode == "control", generator=torch.Generator().manual_seed(42), output_type="np").images[0]
    stock_u8 = (stock * 255).round().astype(np.uint8)
    assert np.abs(ours.astype(int) - stock_u8.astype(int)).max() <= 1
