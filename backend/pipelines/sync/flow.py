"""The flow-transformer side of ``texture_sync`` (FLUX.1 dev/schnell, Z-Image, Qwen-Image): N views'
velocities for the one flow denoise loop (``flow_denoise``), which runs ``SyncHook`` after each step.

Latents stay unpacked between steps (N x C x h x w, h and w = pixels / 8), so the hook fuses x0 =
x_t - sigma * v at the latent grid the correspondence describes; FLUX's and Qwen-Image's 2x2 token
packing happens inside each family's velocity function, per call. The scheduler-consistent update is
``SyncHook``'s own: flow-matching Euler has a = 1 - sigma, s = sigma (``step.signal_noise``).

Micro-batches: FLUX.1 views run several at once (their prompts, pooled CLIP vectors and ControlNet
conditions stacked along the batch; T5 tokens are padded to one length). Z-Image's transformer takes a
list of variable-length captions and Qwen-Image's prompts have per-prompt lengths, so those two run one
view per call. Cross-view attention is refused for every flow family (``check_stage``): their joint
text+image attention processors are not the UNet's ``attn1`` and it is not built for them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from ...models.errors import UnsupportedModel
from ...models.families import FAMILIES, is_flow
from .. import flow_models, flow_prompt, flux, reference
from ..control import ControlUnit
from ..flow_denoise import Velocity

#: Families whose views can share a transformer call (stacked conditioning): FLUX.1's.
BATCHED = frozenset({"flux", "flux-schnell"})


def check_stage(stage: Any, family: str | None) -> None:
    """Refuse what a flow family cannot do in ``texture_sync`` (None: family not known yet, allowed)."""
    if family is None or family not in FAMILIES or not is_flow(family):
        return
    if stage.cross_view_attention:
        raise UnsupportedModel(f"cross_view_attention is not available for {family} models in texture_sync (it is"
                               " built for UNet self-attention; the flow transformers' joint attention has none)",
                               "set cross_view_attention to false (the views still agree through the texture-space"
                               " fusion), or use an SD 1.5 / SDXL model")


class ViewsVelocity:
    """v(x_t, t) of N views (N x C x h x w float32, unpacked): one family velocity per micro-batch of
    views, each built once with its views' conditioning."""

    def __init__(self, parts: list[tuple[int, int, Velocity]]) -> None:
        self.parts = parts

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, i: int, n: int) -> torch.Tensor:
        return torch.cat([velocity(latents[a:b], t, i, n) for a, b, velocity in self.parts])


def _same_settings(view_units: list[list[ControlUnit]]) -> list[list[ControlUnit]]:
    """Every view's units with view 0's weight/start/end (as the UNet path's merged units): a batched
    ControlNet call takes one ``conditioning_scale``."""
    first = view_units[0]
    return [[replace(u, weight=f.weight, start=f.start, end=f.end) for u, f in zip(units, first)]
            for units in view_units]


def _stack_flux(conds: list[flow_prompt.FlowConditioning], controls: list[list[Any]]
                ) -> tuple[flow_prompt.FlowConditioning, list[flux.FluxControl]]:
    c0 = conds[0]
    cond = flow_prompt.FlowConditioning(torch.cat([c.embeds for c in conds]), torch.cat([c.pooled for c in conds]),
                                        c0.text_ids, any(c.truncated for c in conds))
    stacked = []
    for k, ctl in enumerate(controls[0]):
        per = [view[k] for view in controls]
        mode = torch.cat([c.mode for c in per]) if ctl.mode is not None else None
        stacked.append(flux.FluxControl(ctl.unit, torch.cat([c.cond for c in per]), mode, ctl.repeat_blocks))
    return cond, stacked


def views_velocity(base: Any, prompt: str, negative: str, guidance: float, suffixes: list[str],
                   view_units: list[list[ControlUnit]], seed: int, size: int, h: int, w: int,
                   notes: list[str], asked: bool = False, references: list[Any] | None = None
                   ) -> tuple[ViewsVelocity, int]:
    """The N views' velocity and the micro-batch (views per transformer call) it runs with.

    Each view's prompt (with its suffix) is encoded once per distinct suffix; each view's ControlNet
    images are prepared as a plain stage of that view would prepare them (same seed), so with no fusion
    a view's result is the plain flow denoise of that view from the same noise. ``asked``: ``size`` is the
    stage's own ``micro_batch`` (a family that runs one view per call then says so in the notes).
    ``references``: FLUX.1 Redux inputs (``reference.ReduxInput``) whose tokens every view's prompt gets."""
    tokens = reference.redux_token_list(references) if references else []
    cache: dict[str, flow_prompt.FlowConditioning] = {}
    for s in suffixes:
        if s not in cache:
            cond = flow_prompt.encode(base, f"{prompt}, {s}" if s else prompt, negative, guidance)
            cache[s] = reference.with_redux(cond, references or [], tokens)
    conds = [cache[s] for s in suffixes]
    if any(c.truncated for c in conds):
        notes.append("prompt longer than the text encoders take: truncated")
    units = _same_settings(view_units) if view_units and view_units[0] else view_units
    controls = [flow_models.prepare_controls(base, u, seed) for u in units]
    n = len(suffixes)
    if base.family not in BATCHED:
        if size > 1 and asked:
            notes.append(f"{base.family} views run one per transformer call (its prompts have per-prompt lengths)")
        size = 1
    parts: list[tuple[int, int, Velocity]] = []
    for a in range(0, n, size):
        b = min(n, a + size)
        if b - a == 1:
            velocity = flow_models.velocity(base, conds[a], guidance, controls[a], h, w)
        else:
            cond, stacked = _stack_flux(conds[a:b], controls[a:b])
            velocity = flow_models.velocity(base, cond, guidance, stacked, h, w)
        parts.append((a, b, velocity))
    return ViewsVelocity(parts), size

