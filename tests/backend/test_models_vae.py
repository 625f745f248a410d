"""A job may decode with another VAE (issue 13): a copy of the base for that stage, named in the record;
a VAE whose latents do not fit the base is refused with the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _tiny import RecordingProgress
from backend.models import ModelManager, UnsupportedModel
from backend.models.tiny import build_tiny_base
from backend.pipelines import run_job
from backend.spec import JobSpec


def save_vae(folder: Path, seed: int, **overrides: object) -> Path:
    """An AutoencoderKL with builtin:tiny's VAE config (plus ``overrides``) and other random weights."""
    import torch
    from diffusers import AutoencoderKL

    config = dict(build_tiny_base().vae.config)
    config.pop("_use_default_values", None)  # else from_config puts those keys (force_upcast) back to defaults
    config.update(overrides)
    torch.manual_seed(seed)
    AutoencoderKL.from_config(config).save_pretrained(folder, safe_serialization=True)
    return folder


def job(manager: ModelManager, vae: str | None):  # noqa: ANN201 - a JobResult
    spec = JobSpec.model_validate({"model": "builtin:tiny", "prompt": "a chair", "width": 64, "height": 64,
                                   "steps": 3, "seed": 5, "vae": vae, "stages": [{"type": "generate"}]})
    return run_job(spec, {}, manager, RecordingProgress())


def test_a_job_decodes_with_the_vae_it_names_and_the_base_keeps_its_own(tmp_path: Path) -> None:
    folder = save_vae(tmp_path / "other-vae", seed=123)
    manager = ModelManager(device="cpu")
    before = job(manager, None)
    other = job(manager, str(folder))
    after = job(manager, None)
    assert not np.array_equal(before.images[0], other.images[0])
    assert np.array_equal(before.images[0], after.images[0])  # the cached base still has its own VAE
    assert other.info["stages"][0]["vae"] == str(folder)
    assert before.info["stages"][0]["vae"] == "the model's own"
    assert manager.base("builtin:tiny").vae_id is None


def test_a_vae_with_other_latent_channels_is_refused_with_the_fix(tmp_path: Path) -> None:
    folder = save_vae(tmp_path / "wide-vae", seed=1, latent_channels=16)
    with pytest.raises(UnsupportedModel) as err:
        job(ModelManager(device="cpu"), str(folder))
    assert "16-channel" in str(err.value) and "leave `vae` out" in err.value.fix


def test_a_vae_that_is_not_there_is_not_found(tmp_path: Path) -> None:
    from backend.models import ModelNotFound

    with pytest.raises(ModelNotFound):
        job(ModelManager(device="cpu"), str(tmp_path / "nothing"))


def test_a_single_file_vae_in_ldm_format_loads_with_the_bases_vae_config(tmp_path: Path) -> None:
    """An A1111/ComfyUI-style .safetensors VAE (LDM keys, no config) becomes the same AutoencoderKL."""
    import torch
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    from _ldm import vae_to_ldm

    folder = save_vae(tmp_path / "other-vae", seed=7)
    want = AutoencoderKL.from_pretrained(folder)
    save_file({k: v.contiguous() for k, v in vae_to_ldm(want).items()}, str(tmp_path / "other.safetensors"))
    manager = ModelManager(device="cpu")
    got = manager.vae(str(tmp_path / "other.safetensors"), manager.base("builtin:tiny"))
    for key, value in want.state_dict().items():
        assert torch.allclose(got.state_dict()[key].float(), value.float()), key
    result = job(manager, str(tmp_path / "other.safetensors"))
    assert np.array_equal(result.images[0], job(ModelManager(device="cpu"), str(folder)).images[0])


def test_a_vae_in_the_models_folders_is_found_by_its_file_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    from _ldm import vae_to_ldm

    folder = save_vae(tmp_path / "other-vae", seed=7)
    comfy = tmp_path / "ComfyUI" / "models" / "vae"
    comfy.mkdir(parents=True)
    vae = AutoencoderKL.from_pretrained(folder)
    save_file({k: v.contiguous() for k, v in vae_to_ldm(vae).items()}, str(comfy / "my-vae.safetensors"))
    monkeypatch.setenv("SCENECAST_MODELS_FOLDERS", str(tmp_path / "ComfyUI"))
    manager = ModelManager(device="cpu")
    by_name = job(manager, "my-vae.safetensors")
    assert by_name.info["stages"][0]["vae"] == "my-vae.safetensors"
    assert np.array_equal(by_name.images[0], job(manager, str(folder)).images[0])


def test_the_server_refuses_a_vae_of_other_channels_or_one_that_is_not_there_at_submit(tmp_path: Path) -> None:
    from _server import gradient_png, shared_server, tiny_spec

    server = shared_server()
    images = {"depth": gradient_png(64), "edges": gradient_png(64, 1)}
    wide = save_vae(tmp_path / "wide-vae", seed=1, latent_channels=16)
    status, body = server.submit(tiny_spec(vae=str(wide)), images)
    assert status == 400 and body["error"]["code"] == "unsupported_model", body
    assert "16-channel" in body["error"]["message"] and "leave `vae` out" in body["error"]["fix"]
    status, body = server.submit(tiny_spec(vae=str(tmp_path / "nothing")), images)
    assert 400 <= status < 500 and body["error"]["code"] == "model_not_found", body


def test_a_jobs_vae_decodes_in_the_dtype_its_own_config_allows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a float16 GPU (the family dtype made float16 here; the CPU device default stays float32): the
    base computes in float16 and its own VAE decodes in float16, as an SDXL base with the fp16-fix VAE does.
    A VAE the job names whose config says float16 overflows (``force_upcast``: SDXL's stock VAE, black
    images in float16) decodes in float32; one whose config does not, in the base's float16. Each is cached
    in its dtype, and the job runs with it."""
    import torch

    from backend.models import manager_memory

    monkeypatch.setattr(manager_memory, "default_dtype", lambda family, device_type, bf16: "float16")
    manager = ModelManager(device="cpu")
    base = manager.base("builtin:tiny")
    assert base.compute_dtype == base.vae.dtype == torch.float16 and manager.dtype == torch.float32
    stock = save_vae(tmp_path / "stock-vae", seed=3, force_upcast=True)
    safe = save_vae(tmp_path / "fp16-safe-vae", seed=3, force_upcast=False)
    assert manager.vae(str(stock), base).dtype == torch.float32
    assert manager.vae(str(safe), base).dtype == torch.float16
    assert len([k for k in manager.cache.keys() if k[0] == "vae"]) == 2
    result = job(manager, str(stock))
    assert result.info["stages"][0]["vae"] == str(stock) and result.images[0].std() > 0
