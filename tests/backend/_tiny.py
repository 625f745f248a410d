"""Helpers for the model and pipeline tests: a recording Progress and tiny models saved in the layouts
users have them in (diffusers folders, a Hugging Face cache)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np


class RecordingProgress:
    """A Progress that records every event and can cancel after a given number of steps."""

    def __init__(self, cancel_after_steps: int | None = None) -> None:
        self.events: list[tuple] = []
        self.previews: list[tuple[int, np.ndarray]] = []
        self.cancel_after_steps = cancel_after_steps
        self.steps_seen = 0

    def stage(self, index: int, type: str, steps: int) -> None:
        self.events.append(("stage", index, type, steps))

    def step(self, step: int, total: int) -> None:
        self.steps_seen += 1
        self.events.append(("step", step, total))

    def preview(self, step: int, image: np.ndarray) -> None:
        self.previews.append((step, image))
        self.events.append(("preview", step, image.shape))

    def download(self, model: str, done_bytes: int, total_bytes: int | None) -> None:
        self.events.append(("download", model, done_bytes, total_bytes))

    def cancelled(self) -> bool:
        return self.cancel_after_steps is not None and self.steps_seen >= self.cancel_after_steps


def save_tiny_diffusers(folder: Path) -> Path:
    """builtin:tiny written as a diffusers folder (safetensors), the layout hub repos have."""
    from backend.models.tiny import build_tiny_base

    base = build_tiny_base()
    base.unet.save_pretrained(folder / "unet")
    base.vae.save_pretrained(folder / "vae")
    base.text_encoders[0].save_pretrained(folder / "text_encoder")
    base.tokenizers[0].save_pretrained(folder / "tokenizer")
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(base.scheduler_config))
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "PNDMScheduler"]}))
    return folder


def save_tiny_controlnet(folder: Path, kind: str = "depth") -> Path:
    from backend.models.tiny import build_tiny_controlnet

    build_tiny_controlnet(kind).save_pretrained(folder)
    return folder


def install_in_hf_cache(cache: Path, repo_id: str, src: Path, commit: str = "0" * 40) -> Path:
    """Copy ``src`` into ``cache`` the way huggingface_hub stores a download: blobs, snapshots, refs."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        blob = repo / "blobs" / digest
        if not blob.exists():
            shutil.copyfile(f, blob)
        link = snap / f.relative_to(src)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snap
