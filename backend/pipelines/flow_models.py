"""Which velocity function and ControlNet preparation a flow-matching family uses: the one place the
flow path branches by family (each family's module says what is particular to its transformer)."""

from __future__ import annotations

from typing import Any

import torch

from ..models.components import BaseComponents
from . import flux, qwen, zimage
from .control import ControlUnit
from .flow_denoise import Velocity
from .flow_prompt import FlowConditioning


def prepare_controls(base: BaseComponents, units: list[ControlUnit], seed: int) -> list[Any]:
    """Each unit's conditioning, computed once per stage (VAE-encoded control images)."""
    if base.family == "zimage":
        return zimage.prepare_controls(base, units)
    if base.family == "qwen":
        return qwen.prepare_controls(base, units, torch.Generator("cpu").manual_seed(seed))
    # FLUX and Qwen-Image ControlNets sample the VAE posterior: from a generator of their own (same seed, unit order),
    # so that adding, removing or zero-weighting a ControlNet never changes the job's noise.
    return flux.prepare_controls(base, units, [u.type for u in units], torch.Generator("cpu").manual_seed(seed))


def velocity(base: BaseComponents, cond: FlowConditioning, guidance: float, controls: list[Any],
             h: int, w: int) -> Velocity:
    if base.family == "zimage":
        return zimage.ZImageVelocity(base, cond, guidance, controls)
    if base.family == "qwen":
        return qwen.QwenVelocity(base, cond, guidance, controls, h, w)
    return flux.FluxVelocity(base, cond, guidance, controls, h, w)
