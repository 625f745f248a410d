"""What a stage runs with, and the steps every stage shares (schedule, noise, denoise, decode), so
each stage module only says what makes it different.

Two kinds of base model run through the same stage code: UNets (``denoise.py``: DDPM-family
schedulers, CFG batch) and flow-matching transformers (``flow_denoise.py``: FlowMatchEuler, guidance
as an input). The branches between them live here and nowhere in the stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...models.components import BaseComponents
from .. import preview, vae
from ..control import ControlUnit
from .. import flow_models, flow_prompt, flux, reference
from ..denoise import InpaintInputs, StepCallback, denoise
from ..flow_denoise import flow_denoise, make_flow_scheduler
from ..images import from_pixels
from ..interface import Progress
from ..prompt import encode
from ..schedulers import make_scheduler


@dataclass
class StageParams:
    """A stage's resolved parameters (job values filled in, defaults applied)."""

    model: str
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    scheduler: str
    width: int
    height: int
    strength: float = 1.0


@dataclass
class StageContext:
    index: int
    type: str
    base: BaseComponents
    params: StageParams
    units: list[ControlUnit]
    progress: Progress
    preview_every: int
    taesd: Any  # AutoencoderTiny or None
    source: np.ndarray | None = None  # img2img/inpaint: the image to work on, already width x height
    mask: np.ndarray | None = None  # inpaint: H x W float in [0, 1], 1 = repaint
    notes: list[str] = field(default_factory=list)
    steps_run: int = 0
    flow_controls: list[Any] | None = None  # flow ControlNets' prepared conditioning
    references: list[Any] = field(default_factory=list)  # reference.ReferenceInput (UNet families)

    @property
    def device(self) -> torch.device:
        return self.base.device

    def schedule(self, strength: float = 1.0) -> tuple[Any, torch.Tensor]:
        """The scheduler and the timesteps this stage runs: the last ``strength`` fraction of ``steps``.

        Flow families always use their own flow-matching Euler schedule (the spec's sampler names are
        DDPM-family samplers); the record says so."""
        p = self.params
        if self.base.is_flow:
            f = self.base.vae_scale_factor
            sched = make_flow_scheduler(self.base.scheduler_config, p.steps,
                                        flux.image_seq_len(p.height, p.width, f), self.device)
        else:
            sched = make_scheduler(p.scheduler, self.base.scheduler_config)
            sched.set_timesteps(p.steps, device=self.device)
        run = max(1, min(p.steps, int(p.steps * strength)))  # floored, as diffusers and A1111 do
        begin = (p.steps - run) * sched.order
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(begin)
        timesteps = sched.timesteps[begin:]
        self.steps_run = len(timesteps)
        return sched, timesteps

    def generator(self) -> torch.Generator:
        """CPU generator: the same seed gives the same noise on every device. Flow ControlNets' control
        images are encoded here, once per stage."""
        if self.base.is_flow:
            self.flow_controls = flow_models.prepare_controls(self.base, self.units, self.params.seed)
        return torch.Generator("cpu").manual_seed(self.params.seed)

    def add_noise(self, sched: Any, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``latents`` noised to timestep ``t``: DDPM ``add_noise`` or flow matching's ``sigma*noise + (1-sigma)*x``."""
        if self.base.is_flow:
            return sched.scale_noise(latents, t, noise)
        return sched.add_noise(latents, noise, t)

    @staticmethod
    def initial_sigma(sched: Any) -> float:
        """What pure noise is scaled by to start from the first timestep (1 for flow matching)."""
        return float(getattr(sched, "init_noise_sigma", 1.0))

    def noise(self, generator: torch.Generator) -> torch.Tensor:
        f = self.base.vae_scale_factor
        shape = (1, self.base.latent_channels, self.params.height // f, self.params.width // f)
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(self.device)

    def denoise(self, sched: Any, timesteps: torch.Tensor, latents: torch.Tensor, generator: torch.Generator,
                inpaint: InpaintInputs | None = None) -> torch.Tensor:
        p = self.params
        on_step = self._on_step()
        if self.base.is_flow:
            fcond = flow_prompt.encode(self.base, p.prompt, p.negative_prompt, p.guidance)
            if self.references:  # FLUX.1 Redux reference tokens
                fcond = reference.with_redux(fcond, self.references)
            if fcond.truncated:
                self.notes.append("prompt longer than the text encoders take: truncated")
            self.progress.stage(self.index, self.type, len(timesteps))
            h, w = latents.shape[-2:]
            velocity = flow_models.velocity(self.base, fcond, p.guidance, self.flow_controls or [], h, w)
            return flow_denoise(velocity, sched, timesteps, latents, self.progress.cancelled, on_step, inpaint)
        cond = encode(self.base, p.prompt, p.negative_prompt, p.guidance > 1.0, p.width, p.height)
        if cond.truncated:
            self.notes.append("prompt longer than 77 CLIP tokens: truncated")
        self.progress.stage(self.index, self.type, len(timesteps))
        with reference.applied(self.base.unet, self.references, p.guidance > 1.0) as refs:
            return denoise(self.base, sched, timesteps, latents, cond, p.guidance, self.units, generator,
                           self.progress.cancelled, on_step, inpaint, reference=refs)

    def _on_step(self) -> StepCallback:
        def on_step(step: int, total: int, current: torch.Tensor, x0: torch.Tensor | None) -> None:
            self.progress.step(step, total)
            if self.preview_every and step % self.preview_every == 0 and step < total:
                shown = x0 if x0 is not None else current
                self.progress.preview(step, preview.render(shown, self.base.family, self.taesd))

        return on_step

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        return from_pixels(vae.decode(self.base, latents))
