"""LoRAs change the result for their job only: the cached base model is clean again afterwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save_file

from _tiny import RecordingProgress
from backend.models import ModelManager
from backend.models.tiny import build_tiny_base
from backend.pipelines import run_job
from backend.spec import JobSpec


def make_lora(path: Path, unet: bool = True, text: bool = True, seed: int = 0) -> Path:
    """A random LoRA for builtin:tiny in diffusers/peft format ("unet." / "text_encoder." prefixes)."""
    import torch
    from peft import LoraConfig, get_peft_model_state_dict

    torch.manual_seed(seed)
    base = build_tiny_base()
    state = {}
    if unet:
        base.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                         target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
        state.update({f"unet.{k}": v for k, v in get_peft_model_state_dict(base.unet).items()})
    if text:
        from peft import inject_adapter_in_model

        cfg = LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
        enc = inject_adapter_in_model(cfg, base.text_encoders[0])
        state.update({f"text_encoder.{k}": v for k, v in get_peft_model_state_dict(enc).items()})
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(path))
    return path


def job(manager: ModelManager, loras: list[dict]) -> np.ndarray:
    spec = JobSpec.model_validate({"model": "builtin:tiny", "prompt": "a chair", "width": 64, "height": 64, "steps": 3,
                                   "seed": 5, "loras": loras, "stages": [{"type": "generate"}]})
    return run_job(spec, {}, manager, RecordingProgress()).images[0]


def lora_modules(module) -> list[str]:  # noqa: ANN001
    return [name for name, m in module.named_modules() if "lora" in type(m).__name__.lower()]


def test_lora_changes_the_output_and_is_removed_after_the_job(tmp_path: Path) -> None:
    lora = make_lora(tmp_path / "style.safetensors")
    manager = ModelManager(device="cpu")
    before = job(manager, [])
    with_lora = job(manager, [{"name": str(lora), "weight": 1.0}])
    half = job(manager, [{"name": str(lora), "weight": 0.5}])
    after = job(manager, [])
    assert not np.array_equal(before, with_lora)
    assert not np.array_equal(with_lora, half) and not np.array_equal(before, half)
    assert np.array_equal(before, after)
    base = manager.base("builtin:tiny")
    assert lora_modules(base.unet) == [] and lora_modules(base.text_encoders[0]) == []


def test_text_encoder_only_lora_has_an_effect(tmp_path: Path) -> None:
    lora = make_lora(tmp_path / "te.safetensors", unet=False)
    manager = ModelManager(device="cpu")
    assert not np.array_equal(job(manager, []), job(manager, [{"name": str(lora), "weight": 1.0}]))


def test_lora_by_installed_name_and_two_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_lora(tmp_path / "a.safetensors", seed=1)
    make_lora(tmp_path / "b.safetensors", seed=2, text=False)
    monkeypatch.setenv("SCENECAST_LORA_DIR", str(tmp_path))
    manager = ModelManager(device="cpu")
    manager.check("a", "lora")
    assert {"id": "a", "kind": "lora", "family": "sd15", "source": "local", "installed": True} in manager.list_models()
    one = job(manager, [{"name": "a"}])
    both = job(manager, [{"name": "a"}, {"name": "b", "weight": 0.8}])
    assert not np.array_equal(one, both)
    assert np.array_equal(one, job(manager, [{"name": "a"}]))


def test_a_lora_for_another_architecture_is_a_clear_error_and_leaves_the_model_clean(tmp_path: Path) -> None:
    """A LoRA whose layers do not fit (here: wider cross-attention, as an SDXL LoRA on SD1.5) fails with
    a fix, and the base model is exactly as before."""
    import torch
    from safetensors.torch import load_file

    from backend.models import UnsupportedModel

    good = load_file(str(make_lora(tmp_path / "good.safetensors", text=False)))
    bad = {k: (torch.zeros(v.shape[0], 64) if ("attn2.to_k" in k and "lora_A" in k) else v) for k, v in good.items()}
    save_file(bad, str(tmp_path / "bad.safetensors"))
    manager = ModelManager(device="cpu")
    before = job(manager, [])
    with pytest.raises(UnsupportedModel) as err:
        job(manager, [{"name": str(tmp_path / "bad.safetensors")}])
    assert "does not fit" in err.value.message and err.value.fix
    assert lora_modules(manager.base("builtin:tiny").unet) == []
    assert np.array_equal(before, job(manager, []))


@pytest.mark.parametrize(("width", "family"), [(768, "sd15"), (2048, "sdxl")])
def test_lora_family_is_read_from_the_header(tmp_path: Path, width: int, family: str) -> None:
    import torch

    from backend.models.sources import classify_single_file

    path = tmp_path / "l.safetensors"
    key = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight"
    save_file({key: torch.zeros(4, width)}, str(path))
    assert classify_single_file(path) == ("lora", family, False)
