"""A reference image (style/look) in texture_sync through run_job on the tiny builtins: IP-Adapter on SD1.5
and SDXL (the same image embeds for every view, CFG-batched as the generate path batches them, start/end per step),
FLUX.1 Redux (its tokens on every view's prompt); weight 0 is no reference; families without a reference
input refuse it; the cached UNet is left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.models import UnsupportedModel
from backend.models.ip_adapter import TINY_IP_ADAPTER_ID
from backend.pipelines import run_job
from backend.pipelines.reference import ReferenceInput, applied, image_embeds
from backend.spec import JobSpec

from _tiny import RecordingProgress
from sync_scene import correspondence

VIEWS, SIZE = 3, 64
SUFFIXES = ["front view", "side view", "back view"]
REF = np.random.default_rng(7).integers(0, 256, (48, 40, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def part() -> bytes:
    return correspondence(VIEWS, SIZE, texture=32)[0]


def spec(model: str = "builtin:tiny", reference: list | None = None, **kw) -> JobSpec:  # noqa: ANN003
    views = [{"controlnets": [{"image": f"depth{v}", "type": "depth"}], "prompt_suffix": s}
             for v, s in zip(range(VIEWS), SUFFIXES)]
    stage = {"type": "texture_sync", "views": views, "correspondence": "corr", "texture_width": 64, **kw,
             **({"reference": reference} if reference is not None else {})}
    guidance = 3.5 if "flux" in model else 5.0
    return JobSpec.model_validate({"model": model, "prompt": "a crate", "negative_prompt": "fog", "width": SIZE,
                                   "height": SIZE, "steps": 4, "seed": 3, "guidance": guidance,
                                   "stages": [stage]})


def inputs(data: bytes) -> dict:
    rng = np.random.default_rng(0)
    out: dict = {f"depth{v}": rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for v in range(VIEWS)}
    return {**out, "corr": data, "ref": REF}


def run(manager, data: bytes, s: JobSpec):  # noqa: ANN001, ANN201
    return run_job(s, inputs(data), manager, RecordingProgress())


def diff(a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
    """Mean abs difference per view (0..255)."""
    return [float(np.abs(x.astype(int) - y.astype(int)).mean()) for x, y in zip(a[:VIEWS], b[:VIEWS])]


def test_ip_adapter_embeds_are_repeated_per_view_in_each_cfg_half(manager) -> None:  # noqa: ANN001
    """[negative x N, positive x N]: the layout of ``_conditioning``'s [uncond x N, text_0 .. text_N-1]."""
    base = manager.base("builtin:tiny")
    ref = ReferenceInput(manager.ip_adapter(TINY_IP_ADAPTER_ID, base), REF, 1.0)
    with torch.inference_mode():
        one = image_embeds(ref, cfg=True, device=base.unet.device).to(base.unet.dtype)
        with applied(base.unet, [ref], cfg=True, repeat=VIEWS) as run_:
            (embeds,) = run_.embeds
        with applied(base.unet, [ref], cfg=False, repeat=VIEWS) as run_:
            (positive,) = run_.embeds
    assert embeds.shape[0] == 2 * VIEWS and positive.shape[0] == VIEWS
    for v in range(VIEWS):
        assert torch.equal(embeds[v], one[0]) and torch.equal(embeds[VIEWS + v], one[1])
        assert torch.equal(positive[v], one[1])


@pytest.mark.parametrize("model", ["builtin:tiny", "builtin:tiny-sdxl"])
def test_ip_adapter_reference_steers_every_view_and_weight_zero_is_none(manager, part, model) -> None:  # noqa: ANN001
    plain = run(manager, part, spec(model)).images
    zero = run(manager, part, spec(model, [{"image": "ref", "weight": 0.0}]))
    styled = run(manager, part, spec(model, [{"image": "ref", "weight": 1.0}]))
    late = run(manager, part, spec(model, [{"image": "ref", "weight": 1.0, "start": 0.5}])).images
    after = run(manager, part, spec(model)).images  # the cached UNet is restored after the stage
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(zero.images, plain))
    assert "weight 0" in " ".join(zero.info["stages"][0]["notes"])
    assert min(diff(styled.images, plain)) > 5, diff(styled.images, plain)  # every view, not only some
    assert min(diff(late, styled.images)) > 1  # start/end are applied per step
    assert all(np.array_equal(a, b) for a, b in zip(after, plain))
    assert not any("IPAdapter" in type(p).__name__ for p in manager.base(model).unet.attn_processors.values())
    record = styled.info["stages"][0]
    assert record["reference"] == [{"image": "ref", "model": TINY_IP_ADAPTER_ID, "weight": 1.0, "start": 0.0,
                                    "end": 1.0}]
    assert record["sync"]["fused_steps"] == 3


def test_ip_adapter_reference_with_micro_batches_and_cross_view_attention(manager, part) -> None:  # noqa: ANN001
    """The embeds are sliced with the views (micro-batches do not change the result); cross-view attention
    on the self-attention layers and the IP-Adapter on the cross-attention layers run together and both
    come off afterwards."""
    reference = [{"image": "ref", "weight": 0.8}]
    whole = run(manager, part, spec(reference=reference, micro_batch=2 * VIEWS)).images
    pieces = run(manager, part, spec(reference=reference, micro_batch=2)).images
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(whole, pieces))
    crossed = run(manager, part, spec(reference=reference, cross_view_attention=True)).images
    assert min(diff(crossed, whole)) > 0  # the cross-view attention ran too
    procs = manager.base("builtin:tiny").unet.attn_processors.values()
    assert not any(type(p).__name__ in ("IPAdapterAttnProcessor2_0", "CrossViewAttention") for p in procs)


def test_flux_redux_reference_steers_every_view_and_weight_zero_is_none(manager, part) -> None:  # noqa: ANN001
    flux = "builtin:tiny-flux"
    plain = run(manager, part, spec(flux)).images
    zero = run(manager, part, spec(flux, [{"image": "ref", "weight": 0.0}])).images
    styled = run(manager, part, spec(flux, [{"image": "ref", "weight": 1.0}]))
    assert all(np.array_equal(a, b) for a, b in zip(zero, plain))
    # the tiny FLUX listens to its prompt tokens faintly (test_reference.py): small, but clear of zero
    assert min(diff(styled.images, plain)) > 0.1, diff(styled.images, plain)
    assert styled.info["stages"][0]["reference"][0]["model"] == "builtin:tiny-flux-redux"
    # views batched in one transformer call and one at a time: the same Redux tokens on each view's prompt
    single = run(manager, part, spec(flux, [{"image": "ref", "weight": 1.0}], micro_batch=1)).images
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(single, styled.images))


@pytest.mark.parametrize("model", ["builtin:tiny-zimage", "builtin:tiny-qwen"])
def test_families_without_a_reference_input_refuse_it(manager, part, model: str) -> None:  # noqa: ANN001
    with pytest.raises(UnsupportedModel, match=f"not supported for {model.removeprefix('builtin:tiny-')}"):
        run(manager, part, spec(model, [{"image": "ref"}]))


def test_the_reference_is_one_of_the_job_images() -> None:
    s = spec(reference=[{"image": "ref"}])
    assert "ref" in s.image_keys() and s.blob_keys() == {"corr"}
    with pytest.raises(ValueError, match="start"):
        spec(reference=[{"image": "ref", "start": 0.6, "end": 0.5}])
