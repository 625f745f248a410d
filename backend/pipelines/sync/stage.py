"""``texture_sync``: N views denoised together through one packed texture, then baked on the device.

Inputs: the stage (``spec.TextureSyncStage``), each view's ControlNet units (built by ``job.py`` like
any stage's) and the correspondence part (raw bytes, or already parsed by ``ingest.check``). Outputs,
in order: the N view images (H x W x 3 uint8, row 0 top), the texture and its weight map as *strips*
(``texture_width`` packed texels per row, packed texel k at row k // width, column k % width; row 0
top; the last row zero-padded). The weight map is the bake's weight sum per texel divided by its
largest value (recorded as ``weight_max``), so 0 means no view saw that texel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import preview, reference, vae
from ..control import ControlUnit
from ..denoise import denoise
from ..flow_denoise import flow_denoise
from ..prompt import Conditioning, encode
from . import attention, flow, wire
from .fusion import TexelMap, bake, spread
from .step import MicroBatched, SyncHook, free_memory, micro_batched, per_sample_bytes, pick_micro_batch


@dataclass
class SyncInputs:
    """What ``job.py`` hands the stage besides the usual context."""

    stage: Any  # spec.TextureSyncStage
    view_units: list[list[ControlUnit]]  # per view, in the stage's unit order
    correspondence: wire.Correspondence | bytes
    info: dict[str, Any] = field(default_factory=dict)  # filled in: fused steps, micro-batch, timings


def correspondence_of(data: wire.Correspondence | bytes, views: int, width: int, height: int, factor: int
                      ) -> wire.Correspondence:
    """The parsed part, checked against the job: N views, a ``latent`` and an ``image`` level of the
    right sizes. ``ValueError`` says what does not fit."""
    corr = data if isinstance(data, wire.Correspondence) else wire.parse(data)
    if corr.views != views:
        raise ValueError(f"the correspondence has {corr.views} views but the stage lists {views}")
    want = {"latent": (height // factor, width // factor), "image": (height, width)}
    for name, (h, w) in want.items():
        level = corr.levels.get(name)
        if level is None:
            raise ValueError(f"the correspondence has no {name!r} level (it needs 'latent' and 'image')")
        if level.index.shape[1:] != (h, w):
            raise ValueError(f"the correspondence's {name!r} level is {level.index.shape[2]}x{level.index.shape[1]}"
                             f" but this job needs {w}x{h}")
    return corr


def _conditioning(base: Any, prompt: str, negative: str, suffixes: list[str], cfg: bool, width: int,
                  height: int) -> tuple[Conditioning, bool]:
    """Embeddings for N views, CFG-batched as ``denoise`` expects: [uncond x N, text_0 .. text_N-1]."""
    cache: dict[str, Conditioning] = {}
    for s in suffixes:
        if s not in cache:
            text = f"{prompt}, {s}" if s else prompt
            cache[s] = encode(base, text, negative, cfg, width, height)
    per = [cache[s] for s in suffixes]
    truncated = any(c.truncated for c in per)
    if cfg:
        embeds = torch.cat([per[0].embeds[:1].expand(len(per), -1, -1)] + [c.embeds[1:2] for c in per])
    else:
        embeds = torch.cat([c.embeds for c in per])
    added = None
    if per[0].added is not None:
        added = {}
        for k in per[0].added:
            if cfg:
                added[k] = torch.cat([per[0].added[k][:1].expand(len(per), -1)] + [c.added[k][1:2] for c in per])
            else:
                added[k] = torch.cat([c.added[k] for c in per])
    return Conditioning(embeds, added, truncated), truncated


def _merged_units(view_units: list[list[ControlUnit]], cfg: bool, size: int) -> list[ControlUnit]:
    """One unit per ControlNet whose image holds every view's (CFG: twice, matching ``denoise``'s batch)."""
    merged = []
    for k, first in enumerate(view_units[0]):
        images = torch.cat([units[k].image for units in view_units])
        if cfg:
            images = torch.cat([images, images])
        merged.append(ControlUnit(MicroBatched(first.model, size), first.model_id, images, first.weight, first.start,
                                  first.end, first.mode))
    return merged


def _strip(values: np.ndarray, width: int) -> np.ndarray:
    m = values.shape[0]
    rows = max(1, -(-m // width))
    out = np.zeros((rows * width, values.shape[1]), dtype=values.dtype)
    out[:m] = values
    return out.reshape(rows, width, values.shape[1])


def _pick(base: Any, p: Any, n: int, samples: int) -> int:
    """Samples per denoiser call that fit the free memory (``step.per_sample_bytes``: an estimate)."""
    factor = base.vae_scale_factor
    return pick_micro_batch(free_memory(base.device), per_sample_bytes(
        base.family, (p.height // factor, p.width // factor), torch.finfo(base.denoiser.dtype).bits // 8), samples)


def _denoise_unet(ctx: Any, sync: SyncInputs, sched: Any, timesteps: torch.Tensor, latents: torch.Tensor,
                  gen: torch.Generator, hook: SyncHook, state: attention.ViewAttentionState | None,
                  on_step: Any) -> tuple[torch.Tensor, int]:
    """The UNet families' synchronized denoise: views (and CFG branches) batched in micro-batches."""
    stage, p, base = sync.stage, ctx.params, ctx.base
    n = len(stage.views)
    cfg = p.guidance > 1.0
    cond, truncated = _conditioning(base, p.prompt, p.negative_prompt, [v.prompt_suffix for v in stage.views], cfg,
                                    p.width, p.height)
    if truncated:
        ctx.notes.append("prompt longer than 77 CLIP tokens: truncated")
    size = stage.micro_batch or _pick(base, p, n, n * (2 if cfg else 1))
    if state is not None:
        if size < n:  # every view of a CFG half must be in one UNet call
            ctx.notes.append(f"cross-view attention needs all {n} views in one UNet call: micro-batch raised to {n}")
        size = max(n, size // n * n)
    units = _merged_units(sync.view_units, cfg, size)
    ctx.progress.stage(ctx.index, ctx.type, len(timesteps))
    # IP-Adapters first: installing them replaces every attention processor; cross-view attention then
    # takes the self-attention layers only, and each restores what it found.
    with reference.applied(base.unet, ctx.references, cfg, repeat=n) as refs:
        previous = attention.install(base.unet, n, stage.reference_view, state) if state is not None else None
        try:
            latents = denoise(micro_batched(base, size), sched, timesteps, latents, cond, p.guidance, units, gen,
                              ctx.progress.cancelled, on_step, None, hook, reference=refs)
        finally:
            if previous is not None:
                base.unet.set_attn_processor(previous)  # the model is cached across jobs
    return latents, size


def run(ctx: Any, sync: SyncInputs) -> list[np.ndarray]:
    """The stage: see the module docstring. ``ctx`` is the job's ``StageContext``."""
    stage, p, base = sync.stage, ctx.params, ctx.base
    n = len(stage.views)
    factor = base.vae_scale_factor
    corr = correspondence_of(sync.correspondence, n, p.width, p.height, factor)
    device = ctx.device
    lat = corr.levels["latent"]
    img = corr.levels["image"]
    latent_map = TexelMap(lat.index, lat.weight, lat.texels, device)
    image_map = TexelMap(img.index, img.weight, img.texels, device)
    power = corr.power if corr.power > 0 else 1.0

    sched, timesteps = ctx.schedule()
    gen = ctx.generator()
    latents = latent_map.render_noise(base.latent_channels, gen) * ctx.initial_sigma(sched)
    hook = SyncHook(latent_map, sched, timesteps, stage.sync_fraction, stage.power_start / power,
                    stage.power_end / power)
    state = None
    if stage.cross_view_attention and not base.is_flow:
        state = attention.ViewAttentionState(reference_steps=round(stage.reference_fraction * len(timesteps)))
    shown = min(n, 8)

    def on_step(step: int, total: int, current: torch.Tensor, x0: torch.Tensor | None) -> None:
        if state is not None:
            state.step = step  # 1-based count of steps done = the 0-based index of the next one
        ctx.progress.step(step, total)
        if ctx.preview_every and step % ctx.preview_every == 0 and step < total:
            src = x0 if x0 is not None else current
            tiles = [preview.render(src[v:v + 1], base.family, ctx.taesd) for v in range(shown)]
            ctx.progress.preview(step, np.concatenate(tiles, axis=1))  # the views side by side

    started = time.perf_counter()
    if base.is_flow:
        flow.check_stage(stage, base.family)
        velocity, size = flow.views_velocity(
            base, p.prompt, p.negative_prompt, p.guidance, [v.prompt_suffix for v in stage.views], sync.view_units,
            p.seed, stage.micro_batch or _pick(base, p, n, n), p.height // factor, p.width // factor, ctx.notes,
            asked=stage.micro_batch is not None, references=ctx.references)
        ctx.progress.stage(ctx.index, ctx.type, len(timesteps))
        latents = flow_denoise(velocity, sched, timesteps, latents, ctx.progress.cancelled, on_step, None, hook)
    else:
        latents, size = _denoise_unet(ctx, sync, sched, timesteps, latents, gen, hook, state, on_step)
    ctx.steps_run = len(timesteps)
    denoised = time.perf_counter() - started
    images, pixels = [], []
    for v in range(n):  # one view at a time: the VAE decoder is the memory peak at full size
        px = vae.decode(base, latents[v:v + 1])
        u8 = px[0].clamp(-1, 1).add(1).mul(127.5).round()
        pixels.append(u8.div(255.0))
        images.append(u8.to(torch.uint8).permute(1, 2, 0).cpu().numpy())
    started = time.perf_counter()
    tex, wsum = bake(image_map, torch.stack(pixels), exponent=stage.bake_power / power)
    w_max = float(wsum.max()) if wsum.numel() else 0.0
    texture = tex.clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    weight = (wsum / w_max if w_max > 0 else wsum).clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    baked = time.perf_counter() - started
    seen = int((wsum > 0).sum())
    sync.info.update({"latent_spread": round(spread(latent_map, latents), 6),
                      "image_spread": round(spread(image_map, torch.stack(pixels)), 6), "views": n, "texels": img.texels, "latent_texels": lat.texels, "texels_seen": seen,
                      "fused_steps": hook.fused_steps, "cross_view_attention": state is not None,
                      "attention_fallbacks": state.fallbacks if state is not None else 0, "micro_batch": size, "weight_max": w_max,
                      "texture_width": stage.texture_width, "denoise_seconds": round(denoised, 3),
                      "bake_seconds": round(baked, 3),
                      "outputs": [f"view {v}" for v in range(n)] + ["texture", "weight"]})
    if seen < img.texels:
        ctx.notes.append(f"{img.texels - seen} of {img.texels} texels seen by no view: the add-on fills them")
    return images + [_strip(texture, stage.texture_width),
                     np.repeat(_strip(weight[:, None], stage.texture_width), 3, axis=2)]
