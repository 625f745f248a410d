"""``run_job``: a job's stages in order, each consuming the previous stage's image.

Models come from the :class:`ModelManager` (cached across jobs); LoRAs are applied for one stage and
removed after it. ``JobResult.info`` records everything needed to reproduce or label the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..models import ModelManager, UnsupportedModel
from ..spec import Img2ImgStage, InpaintStage, JobSpec, TextureSyncStage
from .control import ControlUnit
from .images import fit, to_control, to_mask
from .interface import JobCancelled, JobResult, Progress
from .stages import STAGES, StageContext, StageParams
from .sync import stage as sync_stage

log = logging.getLogger("scenecast.pipelines")


def _image(images: Mapping[str, np.ndarray], key: str, what: str) -> np.ndarray:
    if key not in images:
        raise ValueError(f"{what} image {key!r} was not sent with the job")
    return images[key]


def _params(spec: JobSpec, stage: Any) -> StageParams:
    r = spec.resolved
    return StageParams(model=r(stage, "model"), prompt=r(stage, "prompt"), negative_prompt=r(stage, "negative_prompt"),
                       seed=int(r(stage, "seed")), steps=int(r(stage, "steps")), guidance=float(r(stage, "guidance")),
                       scheduler=r(stage, "scheduler"), width=spec.width, height=spec.height,
                       strength=float(getattr(stage, "strength", 1.0)))


def _units(stage: Any, base: Any, models: ModelManager, images: Mapping[str, np.ndarray], p: StageParams,
           progress: Progress, notes: list[str]) -> tuple[list[ControlUnit], list[dict[str, Any]]]:
    units, described = [], []
    for k, u in enumerate(stage.controlnets):
        model_id = models.controlnet_id(base.id, base.family, u.type, u.model)
        net = models.controlnet(model_id, on_download=progress.download)
        if net.config.cross_attention_dim != base.unet.config.cross_attention_dim:
            raise UnsupportedModel(f"ControlNet {model_id} does not fit base model {base.id} ({base.family})",
                                   f"use a ControlNet made for {base.family}, or leave `model` out to get the default")
        img, resized = fit(_image(images, u.image, f"controlnets[{k}]"), p.width, p.height)
        if resized:
            notes.append(f"control image {u.image!r} resized from {images[u.image].shape[1]}x{images[u.image].shape[0]}"
                         f" to {p.width}x{p.height}")
        cond = to_control(img, models.device, net.dtype)
        units.append(ControlUnit(net, model_id, cond, u.weight, u.start, u.end, u.mode))
        described.append({"image": u.image, "type": u.type, "model": model_id, "weight": u.weight,
                          "start": u.start, "end": u.end, "mode": u.mode})
    return units, described


def run_job(spec: JobSpec, images: Mapping[str, np.ndarray], models: ModelManager, progress: Progress) -> JobResult:
    """Run every stage of ``spec``; raises JobCancelled, ModelError or ValueError (bad input)."""
    info: dict[str, Any] = {"device": models.plan.label, "dtype": models.plan.dtype_name, "stages": []}
    previous: np.ndarray | None = None
    outputs: list[np.ndarray] | None = None
    for index, stage in enumerate(spec.stages):
        if progress.cancelled():  # before loading models for it, which can take minutes
            raise JobCancelled()
        started = time.perf_counter()
        p = _params(spec, stage)
        notes: list[str] = []
        base = models.base(p.model, on_download=progress.download)
        sync = None
        if isinstance(stage, TextureSyncStage):  # one set of units per view (pipelines/sync/stage.py)
            per_view = [_units(v, base, models, images, p, progress, notes) for v in stage.views]
            units, unit_info = [], [d for _, described in per_view for d in described]
            if stage.correspondence not in images:
                raise ValueError(f"correspondence part {stage.correspondence!r} was not sent with the job")
            sync = sync_stage.SyncInputs(stage, [u for u, _ in per_view], images[stage.correspondence])
        else:
            units, unit_info = _units(stage, base, models, images, p, progress, notes)
        source, mask = previous, None
        if isinstance(stage, (Img2ImgStage, InpaintStage)):
            if stage.image is not None:
                source = _image(images, stage.image, f"stages[{index}].image")
            source, resized = fit(source, p.width, p.height)
            if resized:
                notes.append(f"input image resized to {p.width}x{p.height}")
        if isinstance(stage, InpaintStage):
            mask_img, resized = fit(_image(images, stage.mask, f"stages[{index}].mask"), p.width, p.height)
            mask = to_mask(mask_img)
            if resized:
                notes.append(f"mask resized to {p.width}x{p.height}")
        loras = [(ref.name, ref.weight) for ref in spec.resolved(stage, "loras")]
        with models.loras(base, loras, on_download=progress.download) as lora_info:
            taesd = models.previewer(base.family) if spec.preview_every else None
            ctx = StageContext(index=index, type=stage.type, base=base, params=p, units=units, progress=progress,
                               preview_every=spec.preview_every, taesd=taesd, source=source, mask=mask, notes=notes)
            with torch.inference_mode():
                if sync is not None:
                    outputs = sync_stage.run(ctx, sync)
                else:
                    previous = STAGES[stage.type](ctx)
        record = {"index": index, "type": stage.type, "model": base.id, "family": base.family,
                  "vae": base.vae_id or "the model's own",
                  "prompt": p.prompt, "negative_prompt": p.negative_prompt, "seed": p.seed, "steps": p.steps,
                  "steps_run": ctx.steps_run, "guidance": p.guidance, "scheduler": p.scheduler,
                  "width": p.width, "height": p.height, "controlnets": unit_info,
                  "loras": [{"name": x["name"], "weight": x["weight"]} for x in lora_info],
                  "notes": notes, "seconds": round(time.perf_counter() - started, 3)}
        if isinstance(stage, (Img2ImgStage, InpaintStage)):
            record["strength"] = p.strength
        if sync is not None:
            record["sync"] = sync.info
        info["stages"].append(record)
        log.info("stage %d (%s) done in %.2f s", index, stage.type, record["seconds"])
    return JobResult(images=outputs if outputs is not None else [previous], info=info)
