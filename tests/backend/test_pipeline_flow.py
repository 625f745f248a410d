"""Flow-matching families (FLUX.1, Z-Image, Qwen-Image on their tiny builtins) through the same stage code as the UNets:
generate, img2img and inpaint chains, previews, cancel, the record, LoRAs, and input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save_file

from _tiny import RecordingProgress
from backend.models import ModelManager, UnsupportedModel
from backend.pipelines import JobCancelled, run_job
from backend.spec import JobSpec

FLUX = "builtin:tiny-flux"


@pytest.fixture(scope="module")
def manager() -> ModelManager:
    return ModelManager(device="cpu")


def _run(manager: ModelManager, stages: list[dict], images: dict | None = None, progress=None, model=FLUX, **job):  # noqa: ANN001, ANN003, ANN201
    spec = JobSpec.model_validate({"model": model, "prompt": "a stone well", "width": 64, "height": 64, "steps": 4,
                                   "seed": 7, **job, "stages": stages})
    return run_job(spec, images or {}, manager, progress or RecordingProgress())


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)


FAMILIES = pytest.mark.parametrize("model", [FLUX, "builtin:tiny-zimage", "builtin:tiny-qwen"])


@FAMILIES
def test_chain_generate_img2img_inpaint_keeps_unmasked_pixels(manager: ModelManager, model: str) -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    progress = RecordingProgress()
    result = _run(manager, [{"type": "generate"}, {"type": "img2img", "strength": 0.5},
                            {"type": "inpaint", "image": "src", "mask": "m", "strength": 1.0}],
                  {"src": _image(1), "m": mask}, progress, model=model)
    out = result.images[0]
    assert np.array_equal(out[mask == 0], _image(1)[mask == 0])  # outside the mask: the original, exactly
    assert np.abs(out[mask == 255].astype(int) - _image(1)[mask == 255]).mean() > 10
    stages = [e for e in progress.events if e[0] == "stage"]
    assert stages == [("stage", 0, "generate", 4), ("stage", 1, "img2img", 2), ("stage", 2, "inpaint", 4)]
    rec = result.info["stages"][0]
    assert rec["family"] == model.removeprefix("builtin:tiny-") and rec["scheduler"] == "flow_match_euler"


@FAMILIES
def test_img2img_low_strength_stays_closer_to_the_input(manager: ModelManager, model: str) -> None:
    src = _image(2)
    light = _run(manager, [{"type": "img2img", "image": "src", "strength": 0.25}], {"src": src}, model=model).images[0]
    heavy = _run(manager, [{"type": "img2img", "image": "src", "strength": 1.0}], {"src": src}, model=model).images[0]
    assert np.abs(light.astype(int) - src).mean() < np.abs(heavy.astype(int) - src).mean()


def test_family_defaults_and_notes_in_the_record(manager: ModelManager) -> None:
    spec = JobSpec.model_validate({"model": "builtin:tiny-flux-schnell", "prompt": "x", "negative_prompt": "blur",
                                   "scheduler": "dpmpp_2m", "width": 64, "height": 64, "stages": [{"type": "generate"}]})
    rec = run_job(spec, {}, manager, RecordingProgress()).info["stages"][0]
    assert rec["steps"] == 4 and rec["family"] == "flux-schnell"
    assert any("dpmpp_2m" in n for n in rec["notes"]) and any("negative prompt" in n for n in rec["notes"])


@FAMILIES
def test_previews_and_cancel_within_one_step(manager: ModelManager, model: str) -> None:
    progress = RecordingProgress()
    _run(manager, [{"type": "generate"}], progress=progress, preview_every=1, model=model)
    assert [s for s, _ in progress.previews] == [1, 2, 3]
    assert all(img.shape == (8, 8, 3) for _, img in progress.previews)
    cancelling = RecordingProgress(cancel_after_steps=2)
    with pytest.raises(JobCancelled):
        _run(manager, [{"type": "generate"}], progress=cancelling, model=model)
    assert cancelling.steps_seen == 2


def test_controlnet_weight_start_end_and_union_modes(manager: ModelManager) -> None:
    c = {"c": _image(3)}
    unit = {"image": "c", "type": "depth"}
    plain = _run(manager, [{"type": "generate"}]).images[0]
    full = _run(manager, [{"type": "generate", "controlnets": [unit]}], c).images[0]
    off = _run(manager, [{"type": "generate", "controlnets": [{**unit, "weight": 0.0}]}], c).images[0]
    late = _run(manager, [{"type": "generate", "controlnets": [{**unit, "start": 0.5}]}], c).images[0]
    assert np.array_equal(plain, off)
    assert not np.array_equal(plain, full) and not np.array_equal(full, late)
    union = {**unit, "model": "builtin:tiny-flux-controlnet-union"}
    depth = _run(manager, [{"type": "generate", "controlnets": [union]}], c).images[0]
    canny = _run(manager, [{"type": "generate", "controlnets": [{**union, "type": "canny"}]}], c).images[0]
    assert not np.array_equal(depth, canny)  # the mode reaches the Union ControlNet
    with pytest.raises(UnsupportedModel, match="no control mode for 'normal'"):
        _run(manager, [{"type": "generate", "controlnets": [{**union, "type": "normal"}]}], c)


@pytest.mark.parametrize(("model", "net"), [(FLUX, "builtin:tiny-controlnet-depth"),
                                           (FLUX, "builtin:tiny-zimage-controlnet"),
                                           ("builtin:tiny-zimage", "builtin:tiny-flux-controlnet-depth")])
def test_controlnet_of_another_family_is_refused(manager: ModelManager, model: str, net: str) -> None:
    unit = {"image": "c", "type": "depth", "model": net}
    with pytest.raises(UnsupportedModel, match="does not fit"):
        _run(manager, [{"type": "generate", "controlnets": [unit]}], {"c": _image(3)}, model=model)


def test_zimage_controlnet_and_cfg_change_the_image(manager: ModelManager) -> None:
    z = "builtin:tiny-zimage"
    plain = _run(manager, [{"type": "generate"}], model=z).images[0]
    ctl = _run(manager, [{"type": "generate", "controlnets": [{"image": "c", "type": "normal"}]}], {"c": _image(3)},
               model=z).images[0]
    cfg = _run(manager, [{"type": "generate"}], model=z, guidance=2.0, negative_prompt="blur").images[0]
    assert not np.array_equal(plain, ctl) and not np.array_equal(plain, cfg)


def test_size_not_a_multiple_of_16_is_a_clear_error_before_loading() -> None:
    fresh = ModelManager(device="cpu")
    with pytest.raises(ValueError, match="multiples of 16 pixels.*64x64 or 80x80"):
        _run(fresh, [{"type": "generate"}], width=72, height=72)
    assert fresh.cache.keys() == []  # refused before the model was built


def _lora(path: Path, model: str, seed: int = 0) -> Path:
    """A random diffusers-format LoRA for a tiny flow builtin's transformer ("transformer." prefix)."""
    import torch
    from peft import LoraConfig, get_peft_model_state_dict

    from backend.models.builtins import BASES

    torch.manual_seed(seed)
    tr = BASES[model]().transformer
    tr.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v"]))
    state = {f"transformer.{k}": v.detach().contiguous() for k, v in get_peft_model_state_dict(tr).items()}
    save_file(state, str(path))
    return path


@FAMILIES
def test_lora_changes_the_output_and_is_removed_after(manager: ModelManager, tmp_path: Path, model: str) -> None:
    lora = _lora(tmp_path / "style.safetensors", model)
    before = _run(manager, [{"type": "generate"}], model=model).images[0]
    with_lora = _run(manager, [{"type": "generate"}], model=model, loras=[{"name": str(lora), "weight": 1.0}]).images[0]
    after = _run(manager, [{"type": "generate"}], model=model).images[0]
    assert not np.array_equal(before, with_lora)
    assert np.array_equal(before, after)
    tr = manager.base(model).transformer
    assert not [n for n, m in tr.named_modules() if "lora" in type(m).__name__.lower()]
