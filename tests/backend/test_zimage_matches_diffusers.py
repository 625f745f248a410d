"""Our flow path on Z-Image against diffusers' stock ZImagePipeline / ZImageControlNetPipeline on the
same tiny weights, seed and scheduler: the same pixels to rounding (±1 of 255), with and without CFG.
Guards Z-Image's particulars: reversed time, negated prediction, pos + g*(pos-neg), chat-template
captions without padding, ControlNet context from the VAE mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _tiny import RecordingProgress
from backend.models import ModelManager
from backend.pipelines import run_job
from backend.spec import JobSpec

ZIMAGE = "builtin:tiny-zimage"
W, H = 96, 64


def _stock_kw(base, guidance: float) -> dict:  # noqa: ANN001
    return dict(prompt="a red barn", negative_prompt="fog", height=H, width=W, num_inference_steps=4,
                guidance_scale=guidance, max_sequence_length=base.extra["max_sequence_length"],
                generator=torch.Generator().manual_seed(42), output_type="np")


def _ours(manager: ModelManager, guidance: float, units: list[dict], images: dict) -> np.ndarray:
    spec = JobSpec.model_validate({"model": ZIMAGE, "prompt": "a red barn", "negative_prompt": "fog", "width": W,
                                   "height": H, "steps": 4, "seed": 42, "guidance": guidance,
                                   "stages": [{"type": "generate", "controlnets": units}]})
    return run_job(spec, images, manager, RecordingProgress()).images[0]


def _components(base):  # noqa: ANN001, ANN202
    from diffusers import FlowMatchEulerDiscreteScheduler

    return dict(scheduler=FlowMatchEulerDiscreteScheduler.from_config(base.scheduler_config), vae=base.vae,
                text_encoder=base.text_encoders[0], tokenizer=base.tokenizers[0], transformer=base.transformer)


@pytest.mark.parametrize("guidance", [0.0, 3.0])
def test_generate_matches_stock_zimage_pipeline(guidance: float) -> None:
    from diffusers import ZImagePipeline

    manager = ModelManager(device="cpu")
    base = manager.base(ZIMAGE)
    ours = _ours(manager, guidance, [], {})
    pipe = ZImagePipeline(**_components(base))
    pipe.set_progress_bar_config(disable=True)
    stock = pipe(**_stock_kw(base, guidance)).images[0]
    assert ours.std() > 5
    assert np.abs(ours.astype(int) - (stock * 255).round().astype(int)).max() <= 1


@pytest.mark.parametrize("guidance", [0.0, 3.0])
def test_controlnet_generate_matches_stock_zimage_controlnet_pipeline(guidance: float) -> None:
    from diffusers import ZImageControlNetPipeline

    manager = ModelManager(device="cpu")
    base = manager.base(ZIMAGE)
    control = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    ours = _ours(manager, guidance, [{"image": "c", "type": "depth", "weight": 0.75}], {"c": control})
    without = _ours(manager, guidance, [], {})
    pipe = ZImageControlNetPipeline(**_components(base), controlnet=manager.controlnet("builtin:tiny-zimage-controlnet"))
    pipe.set_progress_bar_config(disable=True)
    stock = pipe(**_stock_kw(base, guidance), control_image=torch.from_numpy(control).permute(2, 0, 1)[None] / 127.5 - 1,
                 controlnet_conditioning_scale=0.75).images[0]
    assert np.abs(ours.astype(int) - without.astype(int)).max() > 10  # the ControlNet changed the image
    assert np.abs(ours.astype(int) - (stock * 255).round().astype(int)).max() <= 1
