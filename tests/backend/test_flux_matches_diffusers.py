"""Our flow-matching denoise path against diffusers' stock FluxPipeline / FluxControlNetPipeline on the
same tiny FLUX.1 weights, seed and scheduler: the same pixels to rounding (±1 of 255). This keeps the
path of our own honest: latent packing, image ids, guidance embedding (dev) or none (schnell), the
shift mu from the image size, ControlNet conditioning (VAE-latent sampling order, Union modes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _tiny import RecordingProgress
from backend.models import ModelManager
from backend.pipelines import run_job
from backend.pipelines.flow_denoise import make_flow_scheduler
from backend.pipelines.flux import pack
from backend.spec import JobSpec

W, H = 96, 64  # not square: catches row/column mix-ups in packing and ids


def _stock_scheduler(base):  # noqa: ANN001, ANN202
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler.from_config(base.scheduler_config)


def _u8(image: np.ndarray) -> np.ndarray:
    return (image * 255).round().astype(np.uint8)


def _spec(model: str, units: list[dict], guidance: float | None = 3.5) -> JobSpec:
    d = {"model": model, "prompt": "a red barn", "width": W, "height": H, "steps": 4, "seed": 42,
         "stages": [{"type": "generate", "controlnets": units}]}
    if guidance is not None:
        d["guidance"] = guidance
    return JobSpec.model_validate(d)


@pytest.mark.parametrize("model", ["builtin:tiny-flux", "builtin:tiny-flux-schnell"])
def test_generate_matches_stock_flux_pipeline(model: str) -> None:
    from diffusers import FluxPipeline

    manager = ModelManager(device="cpu")
    base = manager.base(model)
    ours = run_job(_spec(model, []), {}, manager, RecordingProgress()).images[0]
    pipe = FluxPipeline(scheduler=_stock_scheduler(base), vae=base.vae, text_encoder=base.text_encoders[0],
                        tokenizer=base.tokenizers[0], text_encoder_2=base.text_encoders[1],
                        tokenizer_2=base.tokenizers[1], transformer=base.transformer)
    pipe.set_progress_bar_config(disable=True)
    stock = pipe("a red barn", height=H, width=W, num_inference_steps=4, guidance_scale=3.5,
                 max_sequence_length=base.extra["max_sequence_length"], generator=torch.Generator().manual_seed(42),
                 output_type="np").images[0]
    assert ours.std() > 5  # a real image, not a constant
    assert np.abs(ours.astype(int) - _u8(stock).astype(int)).max() <= 1


@pytest.mark.parametrize(("net_id", "mode"), [("builtin:tiny-flux-controlnet-depth", None),
                                              ("builtin:tiny-flux-controlnet-union", 2)])
def test_controlnet_generate_matches_stock_flux_controlnet_pipeline(net_id: str, mode: int | None) -> None:
    from diffusers import FluxControlNetPipeline

    manager = ModelManager(device="cpu")
    base = manager.base("builtin:tiny-flux")
    net = manager.controlnet(net_id)
    control = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    unit = {"image": "c", "type": "depth", "weight": 0.7, "model": net_id, "start": 0.0, "end": 0.75}
    progress = RecordingProgress()
    ours = run_job(_spec("builtin:tiny-flux", [unit]), {"c": control}, manager, progress).images[0]
    without = run_job(_spec("builtin:tiny-flux", []), {}, manager, RecordingProgress()).images[0]

    # diffusers draws the control image's VAE sample and then the noise from one generator; we draw the
    # noise from a generator of its own (so a ControlNet never changes the job's noise): give the stock
    # pipeline our noise and let its generator (same seed) draw the control sample first, as ours does.
    noise = torch.randn((1, 16, H // 8, W // 8), generator=torch.Generator().manual_seed(42))
    pipe = FluxControlNetPipeline(scheduler=_stock_scheduler(base), vae=base.vae, text_encoder=base.text_encoders[0],
                                  tokenizer=base.tokenizers[0], text_encoder_2=base.text_encoders[1],
                                  tokenizer_2=base.tokenizers[1], transformer=base.transformer, controlnet=net)
    pipe.set_progress_bar_config(disable=True)
    stock = pipe("a red barn", control_image=torch.from_numpy(control).permute(2, 0, 1)[None] / 255.0 * 2 - 1,
                 control_mode=mode, height=H, width=W, num_inference_steps=4, guidance_scale=3.5,
                 controlnet_conditioning_scale=0.7, control_guidance_start=0.0, control_guidance_end=0.75,
                 max_sequence_length=base.extra["max_sequence_length"], generator=torch.Generator().manual_seed(42),
                 latents=pack(noise), output_type="np").images[0]
    assert np.abs(ours.astype(int) - without.astype(int)).max() > 10  # the ControlNet changed the image
    assert np.abs(ours.astype(int) - _u8(stock).astype(int)).max() <= 1


def test_flow_schedule_shifts_with_image_size() -> None:
    """FLUX.1 dev shifts its sigmas towards noise for bigger images (mu from the token count)."""
    from backend.models.tiny_flux import FLUX_SCHEDULER

    small = make_flow_scheduler(FLUX_SCHEDULER, 4, 256, torch.device("cpu")).sigmas
    large = make_flow_scheduler(FLUX_SCHEDULER, 4, 4096, torch.device("cpu")).sigmas
    assert small[0] == large[0] == 1.0
    assert (large[1:-1] > small[1:-1]).all()


def test_two_controlnets_match_stock_multi_controlnet() -> None:
    """Two units (depth + canny nets, different weights and ends) sum as FluxMultiControlNetModel does."""
    from diffusers import FluxControlNetPipeline

    manager = ModelManager(device="cpu")
    base = manager.base("builtin:tiny-flux")
    nets = [manager.controlnet("builtin:tiny-flux-controlnet-depth"), manager.controlnet("builtin:tiny-flux-controlnet-canny")]
    images = [np.random.default_rng(s).integers(0, 256, (H, W, 3), dtype=np.uint8) for s in (0, 1)]
    units = [{"image": "a", "type": "depth", "weight": 0.7, "end": 1.0},
             {"image": "b", "type": "canny", "weight": 0.4, "end": 0.5}]
    ours = run_job(_spec("builtin:tiny-flux", units), {"a": images[0], "b": images[1]}, manager,
                   RecordingProgress()).images[0]
    noise = torch.randn((1, 16, H // 8, W // 8), generator=torch.Generator().manual_seed(42))
    pipe = FluxControlNetPipeline(scheduler=_stock_scheduler(base), vae=base.vae, text_encoder=base.text_encoders[0],
                                  tokenizer=base.tokenizers[0], text_encoder_2=base.text_encoders[1],
                                  tokenizer_2=base.tokenizers[1], transformer=base.transformer, controlnet=nets)
    pipe.set_progress_bar_config(disable=True)
    stock = pipe("a red barn", control_image=[torch.from_numpy(i).permute(2, 0, 1)[None] / 127.5 - 1 for i in images],
                 height=H, width=W, num_inference_steps=4, guidance_scale=3.5, controlnet_conditioning_scale=[0.7, 0.4],
                 control_guidance_start=[0.0, 0.0], control_guidance_end=[1.0, 0.5],
                 max_sequence_length=base.extra["max_sequence_length"], generator=torch.Generator().manual_seed(42),
                 latents=pack(noise), output_type="np").images[0]
    assert np.abs(ours.astype(int) - _u8(stock).astype(int)).max() <= 1
