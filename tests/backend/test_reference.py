"""Reference images (IP-Adapter) on the tiny SD1.5/SDXL builtins: our UNet path against stock diffusers
with the same adapter weights loaded the way ``load_ip_adapter`` loads them, weight 0 against no
reference, and the cached UNet left as it was after a reference stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _tiny import RecordingProgress
from backend.models import ModelManager, UnsupportedModel
from backend.models.ip_adapter import TINY_IP_ADAPTER_ID, fits
from backend.pipelines import run_job
from backend.pipelines.reference import ReferenceInput, image_embeds
from backend.pipelines.schedulers import make_scheduler
from backend.spec import JobSpec

REF = np.random.default_rng(7).integers(0, 256, (48, 40, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def manager() -> ModelManager:
    return ModelManager(device="cpu")


def _spec(model: str = "builtin:tiny", reference: list | None = None, **kw) -> JobSpec:
    stage = {"type": "generate", **({"reference": reference} if reference is not None else {})}
    return JobSpec.model_validate({"model": model, "prompt": "a red barn", "negative_prompt": "fog", "width": 64,
                                   "height": 64, "steps": 4, "seed": 42, "guidance": 6.0, "stages": [stage], **kw})


def _run(manager: ModelManager, spec: JobSpec) -> tuple[np.ndarray, dict]:
    result = run_job(spec, {"ref": REF}, manager, RecordingProgress())
    return result.images[0], result.info


@pytest.mark.parametrize("scheduler", ["euler_a", "dpmpp_2m"])
def test_reference_matches_stock_pipeline_with_ip_adapter(manager: ModelManager, scheduler: str) -> None:
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    base = manager.base("builtin:tiny")
    adapter = manager.ip_adapter(TINY_IP_ADAPTER_ID, base)
    ours, info = _run(manager, _spec(reference=[{"image": "ref", "weight": 0.7}], scheduler=scheduler))
    assert info["stages"][0]["reference"] == [{"image": "ref", "model": TINY_IP_ADAPTER_ID, "weight": 0.7,
                                               "start": 0.0, "end": 1.0}]

    unet = UNet2DConditionModel.from_config(base.unet.config)  # a separate UNet: ours must stay untouched
    unet.load_state_dict(base.unet.state_dict())
    unet._load_ip_adapter_weights([adapter.state_dict])  # what pipe.load_ip_adapter does with the file
    pipe = StableDiffusionPipeline(vae=base.vae, text_encoder=base.text_encoders[0], tokenizer=base.tokenizers[0],
                                   unet=unet.eval(), scheduler=make_scheduler(scheduler, base.scheduler_config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    pipe.set_ip_adapter_scale(0.7)
    with torch.no_grad():
        embeds = image_embeds(ReferenceInput(adapter, REF, 0.7), cfg=True, device=torch.device("cpu"))
        stock = pipe("a red barn", negative_prompt="fog", ip_adapter_image_embeds=[embeds], height=64, width=64,
                     num_inference_steps=4, guidance_scale=6.0, generator=torch.Generator().manual_seed(42),
                     output_type="np").images[0]
    stock_u8 = (stock * 255).round().astype(np.uint8)
    assert np.abs(ours.astype(int) - stock_u8.astype(int)).max() <= 1


@pytest.mark.parametrize("model", ["builtin:tiny", "builtin:tiny-sdxl"])
def test_weight_zero_is_no_reference_and_a_reference_changes_the_image(manager: ModelManager, model: str) -> None:
    plain, _ = _run(manager, _spec(model))
    zero, info = _run(manager, _spec(model, [{"image": "ref", "weight": 0.0}]))
    styled, _ = _run(manager, _spec(model, [{"image": "ref", "weight": 1.0}]))
    late, _ = _run(manager, _spec(model, [{"image": "ref", "weight": 1.0, "start": 0.5}]))
    after, _ = _run(manager, _spec(model))  # the cached UNet is restored after a reference stage
    assert np.abs(zero.astype(int) - plain.astype(int)).max() <= 1
    assert "weight 0" in " ".join(info["stages"][0]["notes"])
    assert np.abs(styled.astype(int) - plain.astype(int)).mean() > 5
    assert np.abs(late.astype(int) - styled.astype(int)).mean() > 1  # start/end matter
    assert np.array_equal(after, plain)
    assert not any("IPAdapter" in type(p).__name__ for p in manager.base(model).unet.attn_processors.values())


def test_two_references_each_with_its_weight(manager: ModelManager) -> None:
    other = np.full((32, 32, 3), 200, dtype=np.uint8)
    spec = _spec(reference=[{"image": "ref", "weight": 1.0}, {"image": "b", "weight": 0.0}])
    one, _ = _run(manager, _spec(reference=[{"image": "ref", "weight": 1.0}]))
    two = run_job(spec, {"ref": REF, "b": other}, manager, RecordingProgress()).images[0]
    assert np.abs(one.astype(int) - two.astype(int)).max() <= 1


def test_tiny_adapter_fits_its_base_only(manager: ModelManager) -> None:
    sd15, sdxl = manager.base("builtin:tiny"), manager.base("builtin:tiny-sdxl")
    assert fits(manager.ip_adapter(TINY_IP_ADAPTER_ID, sd15), sd15.unet)
    assert not fits(manager.ip_adapter(TINY_IP_ADAPTER_ID, sd15), sdxl.unet)


def test_flow_families_without_a_reference_input_refuse_references(manager: ModelManager) -> None:
    for model in ("builtin:tiny-zimage", "builtin:tiny-qwen"):
        spec = _spec(model, [{"image": "ref"}])
        with pytest.raises(UnsupportedModel, match="not supported for"):
            run_job(spec, {"ref": REF}, manager, RecordingProgress())


# -- FLUX.1 Redux ----------------------------------------------------------------------------------------

FW, FH = 96, 64


def _flux_spec(reference: list | None) -> JobSpec:
    stage = {"type": "generate", **({"reference": reference} if reference is not None else {})}
    return JobSpec.model_validate({"model": "builtin:tiny-flux", "prompt": "a red barn", "width": FW, "height": FH,
                                   "steps": 4, "seed": 42, "guidance": 3.5, "stages": [stage]})


def test_flux_redux_matches_stock_redux_components_and_flux_pipeline(manager: ModelManager) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxPriorReduxPipeline
    from transformers import SiglipImageProcessor

    base = manager.base("builtin:tiny-flux")
    result = run_job(_flux_spec([{"image": "ref", "weight": 0.8}]), {"ref": REF}, manager, RecordingProgress())
    ours = result.images[0]
    assert result.info["stages"][0]["reference"][0]["model"] == "builtin:tiny-flux-redux"

    redux = manager.flux_redux("builtin:tiny-flux-redux", base)
    size = redux.image_size
    prior = FluxPriorReduxPipeline(image_encoder=redux.image_encoder, image_embedder=redux.image_embedder,
                                   feature_extractor=SiglipImageProcessor(size={"height": size, "width": size}))
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler.from_config(base.scheduler_config), vae=base.vae,
                        text_encoder=base.text_encoders[0], tokenizer=base.tokenizers[0],
                        text_encoder_2=base.text_encoders[1], tokenizer_2=base.tokenizers[1],
                        transformer=base.transformer)
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        tokens = prior.image_embedder(prior.encode_image(REF, torch.device("cpu"), 1)).image_embeds  # stock Redux
        text, pooled, _ = pipe.encode_prompt("a red barn", None, max_sequence_length=base.extra["max_sequence_length"])
        stock = pipe(prompt_embeds=torch.cat([text, tokens * 0.8], dim=1), pooled_prompt_embeds=pooled, height=FH,
                     width=FW, num_inference_steps=4, guidance_scale=3.5, generator=torch.Generator().manual_seed(42),
                     output_type="np").images[0]
    assert np.abs(ours.astype(int) - (stock * 255).round().astype(int)).max() <= 1


def test_flux_redux_weight_zero_is_no_reference_and_a_reference_changes_the_image(manager: ModelManager) -> None:
    def run(reference):  # noqa: ANN001, ANN202
        return run_job(_flux_spec(reference), {"ref": REF}, manager, RecordingProgress()).images[0].astype(int)

    plain = run(None)
    assert np.array_equal(run([{"image": "ref", "weight": 0.0}]), plain)
    # The tiny FLUX listens to its text tokens faintly (a different prompt moves pixels by ~1.2 on average);
    # Redux tokens move them by ~0.3: small, but well clear of zero.
    assert np.abs(run([{"image": "ref", "weight": 1.0}]) - plain).mean() > 0.15


def test_reference_spec_is_strict() -> None:
    from pydantic import ValidationError

    for bad in ({"image": "ref", "weight": "1"}, {"image": "ref", "strength": 1.0}, {"image": "ref", "start": 0.6,
                "end": 0.5}, {"weight": 1.0}, {"image": "ref", "weight": 3.0}):
        with pytest.raises(ValidationError):
            _spec(reference=[bad])
    assert _spec(reference=[{"image": "ref"}]).image_keys() == {"ref"}
