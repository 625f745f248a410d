"""The model cache keeps its budget: sizes from safetensors headers, room made before loading, models
of a running job pinned, TAESD previewers inside the budget. Real tiny models throughout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _tiny import RecordingProgress, install_in_hf_cache
from backend.models import ModelManager
from backend.models.components import module_bytes
from backend.models.sizes import estimate_bytes
from backend.pipelines import run_job
from backend.spec import JobSpec

BASE_PARTS = ("unet", "vae", "text_encoder", "text_encoder_2")


def sizes() -> tuple[int, int]:
    probe = ModelManager(device="cpu")
    return probe.base("builtin:tiny").nbytes(), module_bytes(probe.controlnet("builtin:tiny-controlnet-depth"))


def test_sizes_are_read_from_safetensors_headers(tiny_folder: Path, tiny_cn_folder: Path) -> None:
    manager = ModelManager(device="cpu")
    for path, parts, loaded in ((tiny_folder, BASE_PARTS, lambda: manager.base(str(tiny_folder)).nbytes()),
                                (tiny_cn_folder, ("",), lambda: module_bytes(manager.controlnet(str(tiny_cn_folder))))):
        estimate, real = estimate_bytes(path, parts, 4), loaded()
        assert estimate is not None and abs(estimate - real) <= 0.02 * real, (path, estimate, real)
        assert estimate_bytes(path, parts, 2) == pytest.approx(estimate / 2, rel=0.02)  # in float16


def test_room_is_made_before_a_model_loads(tiny_folder: Path, tiny_cn_folder: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Peak memory is the budget, not the budget plus the model being loaded."""
    import backend.models.manager as manager_module

    base_bytes, cn_bytes = sizes()
    manager = ModelManager(device="cpu", memory_budget_gb=(base_bytes + cn_bytes // 2) / 1e9)
    manager.controlnet(str(tiny_cn_folder))
    seen_while_loading: list[list] = []
    real_load_base = manager_module.load_base

    def observed_load_base(*args, **kwargs):  # the real loader, watched
        seen_while_loading.append(manager.cache.keys())
        return real_load_base(*args, **kwargs)

    monkeypatch.setattr(manager_module, "load_base", observed_load_base)
    manager.base(str(tiny_folder))
    assert seen_while_loading == [[]], "the ControlNet should have been evicted before the base model loaded"
    assert manager.cache.keys() == [("base", str(tiny_folder))]


def test_a_running_jobs_models_are_never_evicted() -> None:
    """Budget for the base and one ControlNet; the job uses two. Both stay while it runs, and the cache
    is back under budget once it ends."""
    base_bytes, cn_bytes = sizes()
    manager = ModelManager(device="cpu", memory_budget_gb=(base_bytes + cn_bytes * 1.5) / 1e9)
    spec = JobSpec.model_validate({"model": "builtin:tiny", "prompt": "p", "width": 64, "height": 64, "steps": 3,
                                   "stages": [{"type": "generate", "controlnets": [
                                       {"image": "d", "type": "depth"}, {"image": "e", "type": "edges"}]}]})
    image = np.full((64, 64, 3), 128, np.uint8)
    seen: list[set] = []

    class Watching(RecordingProgress):
        def step(self, step: int, total: int) -> None:
            seen.append(set(manager.cache.keys()))
            super().step(step, total)

    run_job(spec, {"d": image, "e": image}, manager, Watching())
    held = {("base", "builtin:tiny"), ("controlnet", "builtin:tiny-controlnet-depth"),
            ("controlnet", "builtin:tiny-controlnet-edges")}
    assert seen and all(held <= keys for keys in seen), seen
    assert manager.cache.pinned() == []
    assert manager.cache.total_bytes() <= manager.cache.budget_bytes


def test_a_model_pinned_by_one_thread_survives_loads_on_another() -> None:
    import threading

    base_bytes, cn_bytes = sizes()
    manager = ModelManager(device="cpu", memory_budget_gb=(base_bytes + cn_bytes // 2) / 1e9)
    with manager.lease():
        manager.base("builtin:tiny")
        other = threading.Thread(target=manager.controlnet, args=("builtin:tiny-controlnet-depth",))
        other.start()
        other.join()
        assert ("base", "builtin:tiny") in manager.cache.keys()
    manager.controlnet("builtin:tiny-controlnet-normal")  # the lease ended: the base may go now
    assert ("base", "builtin:tiny") not in manager.cache.keys()


def test_previewers_count_in_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from diffusers import AutoencoderTiny

    taesd = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                            num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1))
    taesd.save_pretrained(tmp_path / "taesd")
    install_in_hf_cache(tmp_path / "hub", "madebyollin/taesd", tmp_path / "taesd")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    base_bytes, _ = sizes()
    manager = ModelManager(device="cpu", memory_budget_gb=(base_bytes + 1000) / 1e9)
    previewer = manager.previewer("sd15")
    assert previewer is not None
    assert manager.cache.keys() == [("previewer", "madebyollin/taesd")]
    assert manager.cache.total_bytes() == module_bytes(previewer) > 1000
    manager.base("builtin:tiny")  # base + previewer do not fit: the idle previewer goes
    assert manager.cache.keys() == [("base", "builtin:tiny")]
    assert manager.previewer("sd15") is not None  # and comes back when asked for
