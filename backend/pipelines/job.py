"""``run_job``: a job's stages in order, each consuming the previous stage's image.

Models come from the :class:`ModelManager` (cached across jobs); LoRAs are applied for one stage and
removed after it. ``JobResult.info`` records everything needed to reproduce or label the result.
"""

from __future__ import annotations

import dataclasses

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..models import ModelManager, UnsupportedModel
from ..models.families import family_info, is_flow
from ..models.ip_adapter import check_reference_family, default_ip_adapter
from ..models.ip_adapter import fits as ip_fits
from ..models.redux import FLUX_REDUX_ID, TINY_FLUX_REDUX_ID
from ..spec import Img2ImgStage, InpaintStage, JobSpec, TextureSyncStage
from .control import ControlUnit
from .images import fit, to_control, to_mask
from .interface import JobCancelled, JobResult, Progress
from .reference import ReduxInput, ReferenceInput
from .stages import STAGES, StageContext, StageParams
from .sync import flow as sync_flow
from .sync import stage as sync_stage

log = logging.getLogger("scenecast.pipelines")


def _image(images: Mapping[str, np.ndarray], key: str, what: str) -> np.ndarray:
    if key not in images:
        raise ValueError(f"{what} image {key!r} was not sent with the job")
    return images[key]


def _explicit(spec: JobSpec, stage: Any, field: str) -> Any:
    """The stage's or the job's own value for ``field``; None when neither set it (the default applies)."""
    value = getattr(stage, field)
    return getattr(spec, field) if value is None else value


def _params(spec: JobSpec, stage: Any, family: str) -> StageParams:
    """Resolved parameters; steps and guidance left unset get the family's defaults (FLUX.1 dev: 28 steps,
    guidance 3.5; schnell: 4 steps), the rest the spec's."""
    r = spec.resolved
    info = family_info(family)
    steps = _explicit(spec, stage, "steps")
    steps = r(stage, "steps") if steps is None and info.steps is None else info.steps if steps is None else steps
    guidance = _explicit(spec, stage, "guidance")
    if guidance is None:
        guidance = r(stage, "guidance") if info.guidance is None else info.guidance
    return StageParams(model=r(stage, "model"), prompt=r(stage, "prompt"), negative_prompt=r(stage, "negative_prompt"),
                       seed=int(r(stage, "seed")), steps=int(steps), guidance=float(guidance),
                       scheduler=r(stage, "scheduler"), width=spec.width, height=spec.height,
                       strength=float(getattr(stage, "strength", 1.0)))


def _flow_notes(spec: JobSpec, stage: Any, p: StageParams, family: str, notes: list[str]) -> None:
    """What a flow-matching family does not take from the spec, said in the record rather than dropped silently."""
    chosen = _explicit(spec, stage, "scheduler")
    if chosen not in (None, "euler"):
        notes.append(f"scheduler {chosen!r} is a UNet sampler; flow-matching models use their flow-matching Euler")
    if p.negative_prompt and not family_info(family).true_cfg:
        notes.append(f"negative prompt not used: {family} has no classifier-free guidance")
    if any(u.mode != "balanced" for u in stage.controlnets):
        notes.append("ControlNet modes 'prompt'/'control' need CFG; units ran as 'balanced'")


def _check_flow_size(model_id: str, family: str, width: int, height: int) -> None:
    """Flow transformers pack 2x2 patches of the 8x latents: the image must be whole 16-pixel patches."""
    step = 16
    if width % step or height % step:
        fix_w, fix_h = width // step * step, height // step * step
        raise ValueError(f"{model_id} ({family}) needs width and height in multiples of {step} pixels, "
                         f"got {width}x{height}; use {fix_w}x{fix_h} or {fix_w + step}x{fix_h + step}")


def _fits(net: Any, base: Any) -> bool:
    """Whether ControlNet ``net`` was made for ``base``'s architecture."""
    if base.is_flow:
        if type(net).__name__ != family_info(base.family).controlnet_class:
            return False
        width = {"FluxControlNetModel": "joint_attention_dim", "ZImageControlNetModel": "dim",
                 "QwenImageControlNetModel": "joint_attention_dim"}.get(type(net).__name__)
        return width is None or net.config.get(width) == base.transformer.config.get(width)
    return net.config.get("cross_attention_dim") == base.unet.config.cross_attention_dim


def _units(stage: Any, base: Any, models: ModelManager, images: Mapping[str, np.ndarray], p: StageParams,
           progress: Progress, notes: list[str]) -> tuple[list[ControlUnit], list[dict[str, Any]]]:
    units, described = [], []
    for k, u in enumerate(stage.controlnets):
        model_id = models.controlnet_id(base.id, base.family, u.type, u.model)
        net = models.controlnet(model_id, on_download=progress.download)
        if not _fits(net, base):
            raise UnsupportedModel(f"ControlNet {model_id} does not fit base model {base.id} ({base.family})",
                                   f"use a ControlNet made for {base.family}, or leave `model` out to get the default")
        img, resized = fit(_image(images, u.image, f"controlnets[{k}]"), p.width, p.height)
        if resized:
            notes.append(f"control image {u.image!r} resized from {images[u.image].shape[1]}x{images[u.image].shape[0]}"
                         f" to {p.width}x{p.height}")
        cond = to_control(img, models.device, net.dtype)
        units.append(ControlUnit(net, model_id, cond, u.weight, u.start, u.end, u.mode, u.type))
        described.append({"image": u.image, "type": u.type, "model": model_id, "weight": u.weight,
                          "start": u.start, "end": u.end, "mode": u.mode})
    return units, described


def _references(stage: Any, base: Any, models: ModelManager, images: Mapping[str, np.ndarray],
                notes: list[str]) -> tuple[list[Any], list[dict[str, Any]]]:
    """The stage's reference images: IP-Adapters on UNets, Redux on FLUX.1 (docs/models.md)."""
    if not stage.reference:  # texture_sync: the same references steer every view (pipelines/sync/stage.py)
        return [], []
    if base.is_flow:
        return _redux_references(stage, base, models, images, notes)
    refs, described = [], []
    for k, r in enumerate(stage.reference):
        model_id = r.model or default_ip_adapter(base.id, base.family)
        adapter = models.ip_adapter(model_id, base)
        if not ip_fits(adapter, base.unet):
            raise UnsupportedModel(f"IP-Adapter {model_id} does not fit base model {base.id} ({base.family})",
                                   f"use an IP-Adapter made for {base.family}, or leave `model` out to get the default")
        img = _image(images, r.image, f"reference[{k}]")
        refs.append(ReferenceInput(adapter, img, r.weight, r.start, r.end))
        described.append({"image": r.image, "model": model_id, "weight": r.weight, "start": r.start, "end": r.end})
    if all(r.weight == 0 for r in stage.reference):
        notes.append("every reference has weight 0: it does not change the image")
    return refs, described


def default_redux(base_id: str) -> str:
    return TINY_FLUX_REDUX_ID if base_id.startswith("builtin:tiny-flux") else FLUX_REDUX_ID


def _redux_references(stage: Any, base: Any, models: ModelManager, images: Mapping[str, np.ndarray],
                      notes: list[str]) -> tuple[list[Any], list[dict[str, Any]]]:
    """FLUX.1's reference images: Redux tokens appended to the prompt's (other flow families: none)."""
    check_reference_family(base.family)
    refs, described = [], []
    for k, r in enumerate(stage.reference):
        model_id = r.model or default_redux(base.id)
        redux = models.flux_redux(model_id, base)
        if redux.image_embedder.config.txt_in_features != base.transformer.config.joint_attention_dim:
            raise UnsupportedModel(f"Redux model {model_id} does not fit base model {base.id} ({base.family})",
                                   "use a FLUX.1 Redux model, or leave `model` out to get the default")
        refs.append(ReduxInput(redux, _image(images, r.image, f"reference[{k}]"), r.weight))
        described.append({"image": r.image, "model": model_id, "weight": r.weight, "start": r.start, "end": r.end})
        if (r.start, r.end) != (0.0, 1.0):
            notes.append(f"reference {r.image!r}: start/end are not applied to FLUX Redux (it is prompt tokens); "
                         "it ran on every step")
    return refs, described


def run_job(spec: JobSpec, images: Mapping[str, np.ndarray], models: ModelManager, progress: Progress) -> JobResult:
    """Run every stage of ``spec``; raises JobCancelled, ModelError or ValueError (bad input).

    The models the job fetches stay pinned in the cache until it ends: loading another model (a later
    stage's, another thread's) cannot evict them from under it."""
    with models.lease():
        return _run_stages(spec, images, models, progress)


def _run_stages(spec: JobSpec, images: Mapping[str, np.ndarray], models: ModelManager, progress: Progress) -> JobResult:
    info: dict[str, Any] = {"device": models.plan.label, "dtype": models.plan.dtype_name, "stages": []}
    previous: np.ndarray | None = None
    outputs: list[np.ndarray] | None = None
    for index, stage in enumerate(spec.stages):
        if progress.cancelled():  # before loading models for it, which can take minutes
            raise JobCancelled()
        started = time.perf_counter()
        notes: list[str] = []
        model_id = spec.resolved(stage, "model")
        known = models.family(model_id)  # from configs/headers, before a load that can take minutes
        if known is not None and is_flow(known):
            _check_flow_size(model_id, known, spec.width, spec.height)
        if isinstance(stage, TextureSyncStage):
            sync_flow.check_stage(stage, known)
        base = models.base(model_id, on_download=progress.download)
        p = _params(spec, stage, base.family)
        if base.is_flow:
            _check_flow_size(base.id, base.family, p.width, p.height)
            if isinstance(stage, TextureSyncStage):
                sync_flow.check_stage(stage, base.family)  # a hub model whose family was not known before loading
            _flow_notes(spec, stage, p, base.family, notes)
        sync = None
        if isinstance(stage, TextureSyncStage):  # one set of units per view (pipelines/sync/stage.py)
            per_view = [_units(v, base, models, images, p, progress, notes) for v in stage.views]
            units, unit_info = [], [d for _, described in per_view for d in described]
            if stage.correspondence not in images:
                raise ValueError(f"correspondence part {stage.correspondence!r} was not sent with the job")
            sync = sync_stage.SyncInputs(stage, [u for u, _ in per_view], images[stage.correspondence])
        else:
            units, unit_info = _units(stage, base, models, images, p, progress, notes)
        refs, ref_info = _references(stage, base, models, images, notes)
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
        # -- VAE (issue 13): a copy of the base with another VAE, for this stage only
        vae_id = spec.resolved(stage, "vae")
        if vae_id is not None:
            base = dataclasses.replace(base, vae=models.vae(vae_id, base, on_download=progress.download),
                                       vae_id=vae_id)
        loras = [(ref.name, ref.weight) for ref in spec.resolved(stage, "loras")]
        with models.loras(base, loras, on_download=progress.download) as lora_info:
            taesd = models.previewer(base.family) if spec.preview_every else None
            ctx = StageContext(index=index, type=stage.type, base=base, params=p, units=units, progress=progress,
                               preview_every=spec.preview_every, taesd=taesd, source=source, mask=mask, notes=notes,
                               references=refs)
            with torch.inference_mode():
                if sync is not None:
                    outputs = sync_stage.run(ctx, sync)
                else:
                    previous = STAGES[stage.type](ctx)
        record = {"index": index, "type": stage.type, "model": base.id, "family": base.family,
                  "vae": base.vae_id or "the model's own",
                  "prompt": p.prompt, "negative_prompt": p.negative_prompt, "seed": p.seed, "steps": p.steps,
                  "steps_run": ctx.steps_run, "guidance": p.guidance,
                  "scheduler": "flow_match_euler" if base.is_flow else p.scheduler,
                  "width": p.width, "height": p.height, "controlnets": unit_info, "reference": ref_info,
                  "loras": [{"name": x["name"], "weight": x["weight"]} for x in lora_info],
                  "notes": notes, "seconds": round(time.perf_counter() - started, 3)}
        if base.extra.get("memory") is not None:  # models/memory.py: dtype, fp8 storage, offload, VAE tiling
            record["memory"] = base.extra["memory"].describe()
        if isinstance(stage, (Img2ImgStage, InpaintStage)):
            record["strength"] = p.strength
        if sync is not None:
            record["sync"] = sync.info
        info["stages"].append(record)
        log.info("stage %d (%s) done in %.2f s", index, stage.type, record["seconds"])
    return JobResult(images=outputs if outputs is not None else [previous], info=info)
