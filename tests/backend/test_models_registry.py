"""Finding models: the HF cache, local folders, pickle refusal, offline errors, device policy, caching."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from _tiny import RecordingProgress, install_in_hf_cache
from backend.models import DeviceUnavailable, ModelManager, ModelNotFound, UnsafeCheckpoint
from backend.models.components import module_bytes
from backend.pipelines import run_job
from backend.spec import JobSpec


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_folder: Path, tiny_cn_folder: Path) -> Path:
    cache = tmp_path / "hub"
    install_in_hf_cache(cache, "scenecast-test/tiny-sd", tiny_folder, commit="a" * 40)
    install_in_hf_cache(cache, "scenecast-test/tiny-controlnet", tiny_cn_folder, commit="b" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def generate(manager: ModelManager, model: str, controlnet: str | None = None) -> np.ndarray:
    units = [{"image": "c", "model": controlnet}] if controlnet else []
    spec = JobSpec.model_validate({"model": model, "prompt": "p", "width": 64, "height": 64, "steps": 2,
                                   "stages": [{"type": "generate", "controlnets": units}]})
    images = {"c": np.full((64, 64, 3), 128, np.uint8)}
    return run_job(spec, images, manager, RecordingProgress()).images[0]


def test_lists_builtins_hub_models_and_default_controlnets(hf_cache: Path) -> None:
    models = {m["id"]: m for m in ModelManager(device="cpu").list_models()}
    assert models["builtin:tiny"] == {"id": "builtin:tiny", "kind": "base", "family": "sd15", "source": "builtin",
                                      "installed": True}
    assert models["builtin:tiny-controlnet-depth"]["kind"] == "controlnet"
    assert models["scenecast-test/tiny-sd"] == {"id": "scenecast-test/tiny-sd", "kind": "base", "family": "sd15",
                                                "source": "hub", "installed": True}
    assert models["scenecast-test/tiny-controlnet"]["kind"] == "controlnet"
    assert models["scenecast-test/tiny-controlnet"]["family"] == "sd15"
    assert models["lllyasviel/control_v11f1p_sd15_depth"]["installed"] is False
    assert models["diffusers/controlnet-depth-sdxl-1.0"]["family"] == "sdxl"
    # The usual base models are offered before they are installed, so a user sees what to fetch.
    assert models["stabilityai/stable-diffusion-xl-base-1.0"] == {
        "id": "stabilityai/stable-diffusion-xl-base-1.0", "kind": "base", "family": "sdxl", "source": "hub",
        "installed": False}


def test_hub_model_from_the_cache_runs_and_matches_builtin(hf_cache: Path) -> None:
    manager = ModelManager(device="cpu")
    manager.check("scenecast-test/tiny-sd")
    manager.check("scenecast-test/tiny-controlnet", "controlnet")
    base = manager.base("scenecast-test/tiny-sd")
    assert base.source == "hub" and base.family == "sd15"
    from_hub = generate(manager, "scenecast-test/tiny-sd", "scenecast-test/tiny-controlnet")
    builtin = generate(manager, "builtin:tiny", "builtin:tiny-controlnet-depth")
    assert np.array_equal(from_hub, builtin)  # same weights, same pixels: the hub copy was really loaded


def test_local_diffusers_folder(tiny_folder: Path, tiny_cn_folder: Path) -> None:
    manager = ModelManager(device="cpu")
    manager.check(str(tiny_folder))
    base = manager.base(str(tiny_folder))
    assert base.source == "local"
    assert generate(manager, str(tiny_folder), str(tiny_cn_folder)).shape == (64, 64, 3)


def test_missing_hub_model_offline_names_model_and_command(hf_cache: Path) -> None:
    manager = ModelManager(device="cpu")
    with pytest.raises(ModelNotFound) as err:
        manager.check("someone/not-downloaded")
    assert "someone/not-downloaded" in err.value.message and "HF_HUB_OFFLINE" in err.value.message
    assert "hf download someone/not-downloaded" in err.value.fix
    with pytest.raises(ModelNotFound):
        manager.base("someone/not-downloaded")


@pytest.mark.parametrize("ext", [".ckpt", ".pt", ".pth", ".bin"])
@pytest.mark.parametrize("kind", ["base", "controlnet", "lora"])
def test_pickle_checkpoints_are_refused(tmp_path: Path, ext: str, kind: str) -> None:
    f = tmp_path / f"model{ext}"
    f.write_bytes(b"not even opened")
    with pytest.raises(UnsafeCheckpoint) as err:
        ModelManager(device="cpu").check(str(f), kind)
    assert "execute" in err.value.message and ".safetensors" in err.value.fix


def test_diffusers_folder_with_only_bin_weights_is_refused(tmp_path: Path, tiny_folder: Path, hf_cache: Path) -> None:
    folder = tmp_path / "binonly"
    shutil.copytree(tiny_folder, folder)
    st = folder / "unet" / "diffusion_pytorch_model.safetensors"
    st.rename(st.with_suffix(".bin"))
    with pytest.raises(UnsafeCheckpoint, match="unet"):
        ModelManager(device="cpu").check(str(folder))
    install_in_hf_cache(hf_cache, "scenecast-test/bin-only", folder)
    with pytest.raises(UnsafeCheckpoint):
        ModelManager(device="cpu").base("scenecast-test/bin-only")


def test_unknown_ids_say_what_ids_look_like() -> None:
    manager = ModelManager(device="cpu")
    for bad in ["builtin:huge", "./does/not/exist", "not an id"]:
        with pytest.raises(ModelNotFound) as err:
            manager.check(bad)
        assert err.value.fix


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "mps"])
def test_asking_for_an_absent_device_raises_instead_of_using_the_cpu(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available() or device == "mps" and torch.backends.mps.is_available():
        pytest.skip(f"{device} is present here")
    with pytest.raises(DeviceUnavailable) as err:
        ModelManager(device=device)
    assert err.value.fix
    monkeypatch.setenv("SCENECAST_DEVICE", device)
    with pytest.raises(DeviceUnavailable):
        ModelManager()


def test_cpu_policy_and_describe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCENECAST_DEVICE", raising=False)
    import torch

    if not torch.cuda.is_available() and not torch.backends.mps.is_available():
        assert ModelManager().describe()["device"] == "cpu"
    d = ModelManager(device="cpu").describe()
    assert (d["device"], d["dtype"]) == ("cpu", "float32")
    assert ModelManager(device="cpu", dtype="bfloat16").describe()["dtype"] == "bfloat16"
    with pytest.raises(DeviceUnavailable):
        ModelManager(device="cpu", dtype="float16")


def test_lru_eviction_under_a_tiny_budget() -> None:
    probe = ModelManager(device="cpu")
    base_bytes = probe.base("builtin:tiny").nbytes()
    cn_bytes = module_bytes(probe.controlnet("builtin:tiny-controlnet-depth"))
    manager = ModelManager(device="cpu", memory_budget_gb=(base_bytes + cn_bytes * 1.5) / 1e9)
    manager.base("builtin:tiny")
    manager.controlnet("builtin:tiny-controlnet-depth")
    manager.base("builtin:tiny")  # used most recently: the depth ControlNet is now the LRU entry
    manager.controlnet("builtin:tiny-controlnet-normal")
    keys = manager.cache.keys()
    assert ("controlnet", "builtin:tiny-controlnet-depth") not in keys
    assert keys == [("base", "builtin:tiny"), ("controlnet", "builtin:tiny-controlnet-normal")]
    assert manager.cache.total_bytes() <= manager.cache.budget_bytes


def test_bf16_weights_and_channels_last_on_cpu_run() -> None:
    import torch

    manager = ModelManager(device="cpu", dtype="bfloat16", channels_last=True)
    unet = manager.base("builtin:tiny").unet
    assert unet.dtype == torch.bfloat16
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    out = generate(manager, "builtin:tiny", "builtin:tiny-controlnet-depth")
    assert out.shape == (64, 64, 3) and out.std() > 0


def test_family_and_default_controlnet_without_loading(hf_cache: Path, tiny_folder: Path) -> None:
    from backend.models import UnsupportedModel

    manager = ModelManager(device="cpu")
    assert manager.family("builtin:tiny") == "sd15"
    assert manager.family("scenecast-test/tiny-sd") == "sd15"
    assert manager.family(str(tiny_folder)) == "sd15"
    assert manager.default_controlnet("builtin:tiny", "segmentation") == "builtin:tiny-controlnet-segmentation"
    assert manager.default_controlnet(str(tiny_folder), "depth") == "lllyasviel/control_v11f1p_sd15_depth"
    assert manager.cache.keys() == []
    with pytest.raises(UnsupportedModel) as err:
        from backend.models.defaults import default_controlnet

        default_controlnet("org/some-sdxl", "sdxl", "other")  # normal: the SDXL Union since issue 15
    assert "model" in err.value.fix


def test_full_size_random_builtin_is_known_without_building_it() -> None:
    manager = ModelManager(device="cpu")
    manager.check("builtin:sd15-random")
    manager.check("builtin:sd15-random-controlnet", "controlnet")
    assert manager.default_controlnet("builtin:sd15-random", "normal") == "builtin:sd15-random-controlnet"
    assert manager.cache.keys() == []
    with pytest.raises(ModelNotFound, match="builtin:tiny"):
        manager.check("builtin:sd15-randomm")
