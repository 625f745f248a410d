"""ControlNet units and the residuals they add to the UNet at one step.

Modes (the spec's ``mode``):
- ``balanced``: both CFG branches see the control, residuals scaled by ``weight``;
- ``prompt``: "my prompt is more important" (A1111's soft injection): residual k of n down-block
  residuals is scaled by ``weight * 0.825**(n - k)``, so the shallow, detail-carrying layers get less
  control; the middle block gets ``weight``;
- ``control``: guess mode — only the conditional branch sees the control (the unconditional one gets
  zeros), with diffusers' log-spaced per-layer scales 0.1..1.
A unit is active at step i of n when ``start <= i/n`` and ``(i+1)/n <= end``.

ControlNet Union (SDXL, ``ControlNetUnionModel``): one model takes several control images at once, each
in its control-type slot. Units of a stage that use the same Union model with the same weight, start,
end and mode (and different slots) run as one forward pass, as the model was trained; others run alone.
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

# Control types of the SDXL ControlNet Union (xinsir/controlnet-union-sdxl-1.0 and ProMax): 0 openpose,
# 1 depth, 2 soft edges (hed/pidi/scribble), 3 hard lines (canny/lineart/mlsd), 4 normal, 5 segmentation,
# 6 tile, 7 repaint. Unit types -> slot.
UNION_SLOTS = {"depth": 1, "edges": 3, "canny": 3, "lineart": 3, "normal": 4, "segmentation": 5}


def is_union(model: Any) -> bool:
    return type(model).__name__ == "ControlNetUnionModel"


def union_slot(unit: ControlUnit) -> int:
    if unit.type not in UNION_SLOTS:
        from ..models.errors import UnsupportedModel  # noqa: PLC0415

        raise UnsupportedModel(
            f"ControlNet Union {unit.model_id} has no control type for {unit.type!r} units "
            f"(it has: {', '.join(sorted(UNION_SLOTS))})",
            "give this unit a ControlNet made for its type in its `model` field, or change its type")
    return UNION_SLOTS[unit.type]


def groups(units: list[ControlUnit]) -> list[list[ControlUnit]]:
    """Units in forward passes: Union units sharing model and settings (one image per slot) together."""
    out: list[list[ControlUnit]] = []
    for unit in units:
        if is_union(unit.model):
            union_slot(unit)  # a clear error before any step runs
            for g in out:
                head = g[0]
                if (head.model is unit.model and (head.weight, head.start, head.end, head.mode)
                        == (unit.weight, unit.start, unit.end, unit.mode)
                        and union_slot(unit) not in {union_slot(u) for u in g}):
                    g.append(unit)
                    break
            else:
                out.append([unit])
        else:
            out.append([unit])
    return out


def residuals(units: list[ControlUnit], i: int, n: int, x: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor,
              added: dict[str, torch.Tensor] | None, cfg: bool) -> Residuals:
    """Sum of the active units' down-block and mid-block residuals for model input ``x`` (CFG-batched)."""
    down_total: list[torch.Tensor] | None = None
    mid_total: torch.Tensor | None = None
    for group in groups(units):
        unit = group[0]
        if not unit.active(i, n):
            continue
        guess = unit.mode == "control"
        if guess and cfg:  # conditional half only
            xs, es = x[1:], embeds[1:]
            ad = {k: v[1:] for k, v in added.items()} if added else None
        else:
            xs, es, ad = x, embeds, added
        scale = 1.0 if unit.mode == "prompt" else unit.weight
        kw: dict[str, Any]
        if is_union(unit.model):
            slots = [union_slot(u) for u in group]
            images = {s: u.image for s, u in zip(slots, group)}
            n_types = int(unit.model.config.num_control_type)
            order = sorted(slots)
            control_type = torch.zeros(n_types).scatter_(0, torch.tensor(order), 1)
            kw = {"controlnet_cond": [images[s].expand(xs.shape[0], -1, -1, -1).to(unit.model.dtype) for s in order],
                  "control_type": control_type.reshape(1, -1).to(xs.device, unit.model.dtype).repeat(xs.shape[0], 1),
                  "control_type_idx": order}
        else:
            kw = {"controlnet_cond": unit.image.expand(xs.shape[0], -1, -1, -1).to(dtype=unit.model.dtype)}
        down, mid = unit.model(xs.to(unit.model.dtype), t, encoder_hidden_states=es.to(unit.model.dtype),
                               conditioning_scale=scale, guess_mode=guess, added_cond_kwargs=ad, return_dict=False,
                               **kw)
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
