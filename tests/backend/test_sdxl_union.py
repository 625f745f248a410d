"""SDXL ControlNet Union: the SDXL default for unit types without a dedicated SDXL ControlNet (normal,
segmentation, lineart), one model serving several units in one forward pass. Checked against diffusers'
stock StableDiffusionXLControlNetUnionPipeline on the same tiny weights, seed and scheduler."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny import RecordingProgress
from backend.models import ModelManager, UnsupportedModel
from backend.models.defaults import DEFAULT_CONTROLNETS, SDXL_UNION
from backend.models.loading import is_union_controlnet_folder
from backend.pipelines import run_job
from backend.pipelines.schedulers import make_scheduler
from backend.spec import JobSpec

SDXL = "builtin:tiny-sdxl"
UNION = "builtin:tiny-sdxl-controlnet-union"


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def _ours(manager: ModelManager, units: list[dict], images: dict, scheduler: str = "euler") -> np.ndarray:
    spec = JobSpec.model_validate({"model": SDXL, "prompt": "a red barn", "negative_prompt": "fog", "width": 64,
                                   "height": 64, "steps": 4, "seed": 42, "guidance": 5.0, "scheduler": scheduler,
                                   "stages": [{"type": "generate", "controlnets": units}]})
    return run_job(spec, images, manager, RecordingProgress()).images[0]


def test_sdxl_defaults_use_the_union_for_normal_segmentation_lineart() -> None:
    table = DEFAULT_CONTROLNETS["sdxl"]
    assert table["normal"] == table["segmentation"] == table["lineart"] == SDXL_UNION
    assert table["depth"] != SDXL_UNION
    manager = ModelManager(device="cpu")
    assert manager.default_controlnet(SDXL, "normal") == UNION
    assert manager.default_controlnet(SDXL, "depth") == "builtin:tiny-sdxl-controlnet-depth"


@pytest.mark.parametrize("scheduler", ["euler", "dpmpp_2m"])
def test_two_units_on_one_union_match_the_stock_union_pipeline(scheduler: str) -> None:
    from diffusers import StableDiffusionXLControlNetUnionPipeline

    manager = ModelManager(device="cpu")
    base = manager.base(SDXL)
    normal, seg = _image(1), _image(2)
    units = [{"image": "n", "type": "normal", "weight": 0.8}, {"image": "s", "type": "segmentation", "weight": 0.8}]
    ours = _ours(manager, units, {"n": normal, "s": seg}, scheduler)
    only_normal = _ours(manager, units[:1], {"n": normal}, scheduler)
    pipe = StableDiffusionXLControlNetUnionPipeline(
        vae=base.vae, text_encoder=base.text_encoders[0], text_encoder_2=base.text_encoders[1],
        tokenizer=base.tokenizers[0], tokenizer_2=base.tokenizers[1], unet=base.unet,
        controlnet=manager.controlnet(UNION), scheduler=make_scheduler(scheduler, base.scheduler_config),
        force_zeros_for_empty_prompt=True)
    pipe.set_progress_bar_config(disable=True)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).permute(2, 0, 1)[None] / 255.0

    stock = pipe("a red barn", negative_prompt="fog", control_image=[tensor(normal), tensor(seg)], control_mode=[4, 5],
                 height=64, width=64, num_inference_steps=4, guidance_scale=5.0, controlnet_conditioning_scale=0.8,
                 generator=torch.Generator().manual_seed(42), output_type="np").images[0]
    assert not np.array_equal(ours, only_normal)  # the second unit reached the Union model
    assert np.abs(ours.astype(int) - (stock * 255).round().astype(int)).max() <= 1


def test_union_units_with_other_settings_run_separately_and_unknown_types_are_refused() -> None:
    manager = ModelManager(device="cpu")
    images = {"n": _image(1), "s": _image(2)}
    same = _ours(manager, [{"image": "n", "type": "normal"}, {"image": "s", "type": "segmentation"}], images)
    split = _ours(manager, [{"image": "n", "type": "normal"}, {"image": "s", "type": "segmentation", "end": 0.5}],
                  images)
    assert not np.array_equal(same, split)
    with pytest.raises(UnsupportedModel, match="no control type for 'other'"):
        _ours(manager, [{"image": "n", "type": "other", "model": UNION}], images)


def test_union_folder_is_recognised_by_its_weights(tmp_path: Path) -> None:
    """Some Union repos keep "ControlNetModel" as their config's class: the weights decide."""
    import json

    from backend.models.tiny_sdxl import build_tiny_sdxl_controlnet

    build_tiny_sdxl_controlnet("union").save_pretrained(tmp_path / "union")
    cfg = json.loads((tmp_path / "union" / "config.json").read_text())
    cfg["_class_name"] = "ControlNetModel"
    cfg.pop("num_control_type", None)
    (tmp_path / "union" / "config.json").write_text(json.dumps(cfg))
    build_tiny_sdxl_controlnet("depth").save_pretrained(tmp_path / "depth")
    assert is_union_controlnet_folder(tmp_path / "union")
    assert not is_union_controlnet_folder(tmp_path / "depth")
    net = ModelManager(device="cpu").controlnet(str(tmp_path / "union"))
    assert type(net).__name__ == "ControlNetUnionModel"
