"""ControlNet units and the residuals they add to the UNet at one step.

Modes (the spec's ``mode``):
- ``balanced``: both CFG branches see the control, residuals scaled by ``weight``;
- ``prompt``: "my prompt is more important" (A1111's soft injection): residual k of n down-block
  residuals is scaled by ``weight * 0.825**(n - k)``, so the shallow, detail-carrying layers get less
  control; the middle block gets ``weight``;
- ``control``: guess mode — only the conditional branch sees the control (the unconditional one gets
  zeros), with diffusers' log-spaced per-layer scales 0.1..1.
A unit is active at step i of n when ``start <= i/n`` and ``(i+1)/n <= end``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class ControlUnit:
    model: Any  # ControlNetModel, placed on the device
    model_id: str
    image: torch.Tensor  # 1 x 3 x H x W in [0, 1], the job's width x height
    weight: float
    start: float
    end: float
    mode: str
    type: str = "other"  # the unit's type (depth, canny, ...): Union ControlNets pick their control mode by it

    def active(self, i: int, n: int) -> bool:
        return self.weight > 0 and not (i / n < self.start or (i + 1) / n > self.end)


Residuals = tuple[list[torch.Tensor] | None, torch.Tensor | None]


def residuals(units: list[ControlUnit], i: int, n: int, x: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor,
              added: dict[str, torch.Tensor] | None, cfg: bool) -> Residuals:
    """Sum of the active units' down-block and mid-block residuals for model input ``x`` (CFG-batched)."""
    down_total: list[torch.Tensor] | None = None
    mid_total: torch.Tensor | None = None
    for unit in units:
        if not unit.active(i, n):
            continue
        guess = unit.mode == "control"
        if guess and cfg:  # conditional half only
            xs, es = x[1:], embeds[1:]
            ad = {k: v[1:] for k, v in added.items()} if added else None
        else:
            xs, es, ad = x, embeds, added
        cond = unit.image.expand(xs.shape[0], -1, -1, -1).to(dtype=unit.model.dtype)
        scale = 1.0 if unit.mode == "prompt" else unit.weight
        down, mid = unit.model(xs.to(unit.model.dtype), t, encoder_hidden_states=es.to(unit.model.dtype),
                               controlnet_cond=cond, conditioning_scale=scale, guess_mode=guess,
                               added_cond_kwargs=ad, return_dict=False)
        if unit.mode == "prompt":
            n_down = len(down)
            down = [d * (unit.weight * 0.825 ** (n_down - k)) for k, d in enumerate(down)]
            mid = mid * unit.weight
        if guess and cfg:
            down = [torch.cat([torch.zeros_like(d), d]) for d in down]
            mid = torch.cat([torch.zeros_like(mid), mid])
        if down_total is None:
            down_total, mid_total = list(down), mid
        else:
            down_total = [a + b for a, b in zip(down_total, down)]
            mid_total = mid_total + mid
    return down_total, mid_total
