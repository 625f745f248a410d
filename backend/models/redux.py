"""FLUX.1 Redux: FLUX's own reference-image input (diffusers' FluxPriorReduxPipeline, without the
pipeline class). A SigLIP vision model encodes the image; ``ReduxImageEncoder`` maps its last hidden
states to extra T5-width tokens that are appended to the prompt's (pipelines/reference.py).

Ids:
* ``builtin:tiny-flux-redux``: a tiny random SigLIP + Redux embedder for ``builtin:tiny-flux`` /
  ``builtin:tiny-flux-schnell`` (noise, for tests).
* ``black-forest-labs/FLUX.1-Redux-dev`` (gated; ``image_encoder/`` + ``image_embedder/``, safetensors),
  or a local diffusers folder with those two subfolders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import ModelNotFound

TINY_FLUX_REDUX_ID = "builtin:tiny-flux-redux"
FLUX_REDUX_ID = "black-forest-labs/FLUX.1-Redux-dev"
SEED = 8765
TINY_TOKEN_GAIN = 20.0
TINY_SIGLIP = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                   image_size=32, patch_size=8)


@dataclass
class FluxRedux:
    id: str
    image_encoder: Any  # SiglipVisionModel
    image_embedder: Any  # ReduxImageEncoder
    image_size: int

    def nbytes(self) -> int:
        return sum(p.numel() * p.element_size() for m in (self.image_encoder, self.image_embedder)
                   for p in m.parameters())


def build_tiny_flux_redux(text_width: int) -> FluxRedux:
    """Random SigLIP + Redux embedder producing tokens of the tiny FLUX's T5 width ``text_width``."""
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder  # noqa: PLC0415
    from transformers import SiglipVisionConfig, SiglipVisionModel  # noqa: PLC0415

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        encoder = SiglipVisionModel(SiglipVisionConfig(**TINY_SIGLIP)).eval()
        embedder = ReduxImageEncoder(redux_dim=TINY_SIGLIP["hidden_size"], txt_in_features=text_width).eval()
        with torch.no_grad():  # default init gives tokens too faint to matter in the tiny transformer
            embedder.redux_down.weight.mul_(TINY_TOKEN_GAIN)
    return FluxRedux(TINY_FLUX_REDUX_ID, encoder, embedder, TINY_SIGLIP["image_size"])


def load_flux_redux(model_id: str, text_width: int) -> FluxRedux:
    if model_id == TINY_FLUX_REDUX_ID:
        return build_tiny_flux_redux(text_width)
    from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder  # noqa: PLC0415
    from transformers import SiglipVisionModel  # noqa: PLC0415

    folder = Path(model_id).expanduser()
    if not folder.is_dir():
        from huggingface_hub import snapshot_download  # noqa: PLC0415

        folder = Path(snapshot_download(model_id, allow_patterns=["image_encoder/*.json", "image_encoder/*.safetensors",
                                                                  "image_embedder/*.json",
                                                                  "image_embedder/*.safetensors"]))
    if not (folder / "image_encoder").is_dir() or not (folder / "image_embedder").is_dir():
        raise ModelNotFound(f"{model_id} has no image_encoder/ and image_embedder/ folders",
                            f"use {FLUX_REDUX_ID} or a copy of it")
    encoder = SiglipVisionModel.from_pretrained(folder / "image_encoder", use_safetensors=True).eval()
    embedder = ReduxImageEncoder.from_pretrained(folder / "image_embedder", use_safetensors=True).eval()
    return FluxRedux(model_id, encoder, embedder, int(encoder.config.image_size))
