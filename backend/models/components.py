"""What a loaded base model is: the parts our denoise path uses, nothing pipeline-shaped.

ControlNets are not part of it — they are cached separately so that changing the ControlNets between
jobs never touches (or reloads) the base model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

Family = Literal["sd15", "sdxl", "flux", "flux-schnell", "zimage", "qwen"]  # see families.py


def module_bytes(*modules: torch.nn.Module | None) -> int:
    """Parameter + buffer bytes: what a module costs in (device) memory, for the cache budget."""
    total = 0
    for m in modules:
        if m is None:
            continue
        total += sum(p.numel() * p.element_size() for p in m.parameters())
        total += sum(b.numel() * b.element_size() for b in m.buffers())
    return total


@dataclass(eq=False)
class BaseComponents:
    """A base model's parts, already on the manager's device and dtype.

    ``text_encoders``/``tokenizers`` have one entry for SD1.5 and two for SDXL (CLIP-L, then OpenCLIP-bigG
    with its projection, whose pooled output feeds the UNet's added conditioning) and for FLUX.1 (CLIP-L,
    whose pooled output is the transformer's ``pooled_projections``, then T5). UNet families set ``unet``;
    flow-matching families (``families.is_flow``) set ``transformer`` instead.
    """

    id: str
    family: Family
    source: str  # builtin | hub | local | single_file
    unet: Any  # UNet2DConditionModel, or None for flow-matching families
    vae: Any  # AutoencoderKL
    text_encoders: list[Any]
    tokenizers: list[Any]
    scheduler_config: dict[str, Any]
    vae_decode_dtype: torch.dtype  # float32 when the VAE must be upcast (SDXL's VAE overflows in fp16)
    force_zeros_for_empty_prompt: bool = False  # SDXL: an empty negative prompt is a zero embedding
    vae_id: str | None = None  # a VAE from elsewhere (SDXL's fp16 fix); None: the model's own
    extra: dict[str, Any] = field(default_factory=dict)  # flow families: max_sequence_length
    transformer: Any = None  # FluxTransformer2DModel, ... (flow-matching families)
    # Where the modules compute. Set by the memory plan (models/memory.py): under offload hooks the modules
    # sit on the CPU between forwards, so their own ``.device`` is not where a job's tensors belong.
    exec_device: Any = None

    @property
    def device(self) -> torch.device:
        """The device a job's tensors (noise, latents, ids) are made on."""
        return self.exec_device if self.exec_device is not None else self.denoiser.device

    @property
    def denoiser(self) -> Any:
        """The network each step runs: the UNet or the flow transformer (its device/dtype are the job's)."""
        return self.unet if self.unet is not None else self.transformer

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the denoiser computes in, which what feeds it (reference-image encoders, adapters) must
        match: the memory plan's compute dtype (models/memory.py; under fp8 storage the weights are float8
        but each layer runs in this), else — a base placed without a plan — the denoiser's own dtype."""
        plan = self.extra.get("memory")
        if plan is not None:
            return getattr(torch, plan.dtype)
        return self.denoiser.dtype

    @property
    def is_flow(self) -> bool:
        return self.transformer is not None

    @property
    def is_inpainting(self) -> bool:
        """A 9-channel UNet trained for inpainting (latents + mask + masked-image latents)."""
        return self.unet is not None and int(self.unet.config.in_channels) == 9

    @property
    def vae_scale_factor(self) -> int:
        if "temperal_downsample" in self.vae.config:  # Qwen-Image's 3D VAE
            return 2 ** len(self.vae.config.temperal_downsample)
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        cfg = self.vae.config
        return int(cfg.z_dim if "z_dim" in cfg else cfg.latent_channels)

    def nbytes(self) -> int:
        return module_bytes(self.unet, self.transformer, self.vae, *self.text_encoders)
