"""Bad input is a 4xx-style error naming the fix, never a crash: specs, model files, 16-bit PNGs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from backend.api.errors import ApiError
from backend.api.routes_jobs import parse_spec
from backend.jobs.images import decode_png
from backend.models import ModelError, ModelManager


def test_deeply_nested_json_is_a_400_not_a_crash() -> None:
    with pytest.raises(ApiError) as info:
        parse_spec("[" * 200_000)
    assert info.value.status == 400


def test_a_truncated_safetensors_file_is_a_model_error_naming_the_file(tmp_path) -> None:
    broken = tmp_path / "half-downloaded.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    with pytest.raises(ModelError) as info:
        ModelManager(device="cpu").check(str(broken))
    assert "half-downloaded.safetensors" in info.value.message and info.value.fix


def test_a_dark_16_bit_png_is_scaled_by_its_format_not_its_values() -> None:
    dark = np.full((4, 4), 200, np.uint16)  # every value <= 255, still 16-bit: 200/65535 is near black
    buf = io.BytesIO()
    Image.fromarray(dark).save(buf, format="PNG")
    assert decode_png(buf.getvalue(), "depth").max() <= 1


def test_hub_downloads_skip_the_root_single_file_checkpoints() -> None:
    """SD1.5's repo carries 4–8 GB single files at its root beside the diffusers folders we load."""
    from huggingface_hub.utils import filter_repo_objects

    from backend.models.loading import HUB_IGNORE, hub_patterns

    sd15 = ["model_index.json", "v1-5-pruned.safetensors", "v1-5-pruned-emaonly.safetensors", "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
            "unet/diffusion_pytorch_model.bin", "text_encoder/model.safetensors", "tokenizer/vocab.json",
            "tokenizer/merges.txt", "scheduler/scheduler_config.json", "safety_checker/model.safetensors"]
    got = set(filter_repo_objects(sd15, allow_patterns=hub_patterns(False), ignore_patterns=HUB_IGNORE))
    assert got == {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                   "text_encoder/model.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt",
                   "scheduler/scheduler_config.json"}
    controlnet = ["config.json", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                  "diffusion_pytorch_model.bin", "images/input.png"]
    got = set(filter_repo_objects(controlnet, allow_patterns=hub_patterns(True), ignore_patterns=HUB_IGNORE))
    assert got == {"config.json", "diffusion_pytorch_model.fp16.safetensors"}


def test_a_cancel_during_a_hub_download_stops_it_as_a_cancel(monkeypatch) -> None:
    """The job's progress callback raises inside the download; it must not turn into 'model not found'."""
    from backend.models import loading
    from backend.pipelines.interface import JobCancelled

    def fake_snapshot_download(repo_id, allow_patterns, ignore_patterns, tqdm_class):
        bar = tqdm_class(total=100, unit="B")
        bar.update(10)  # the hub's progress bar ticks; the job was cancelled meanwhile
        raise AssertionError("the cancel did not stop the download")

    def on_progress(model, done, total):
        raise JobCancelled()

    monkeypatch.setattr(loading, "snapshot_download", fake_snapshot_download)
    with pytest.raises(JobCancelled):
        loading.download("org/model", False, on_progress)
