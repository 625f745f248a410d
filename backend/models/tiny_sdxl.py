"""``builtin:tiny-sdxl``: a tiny random-weight SDXL-shaped model built in code (two text encoders, pooled
embeddings, size conditioning), with tiny SDXL ControlNets: one per unit type that SDXL has a dedicated
ControlNet for (depth, canny, edges) and a ControlNet Union (``ControlNetUnionModel``, xinsir layout) for
the others (normal, segmentation, lineart) — the same split as the real SDXL defaults. Produces noise.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, ControlNetModel, ControlNetUnionModel, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from .components import BaseComponents
from .configs import SDXL_SCHEDULER
from .tiny import VAE, tiny_text_config
from .tokenizers import byte_level_vocab, make_tokenizer

TINY_SDXL_ID = "builtin:tiny-sdxl"
TINY_SDXL_CONTROLNET_PREFIX = "builtin:tiny-sdxl-controlnet-"
TINY_SDXL_UNION_ID = "builtin:tiny-sdxl-controlnet-union"
DEDICATED_TYPES = ("depth", "canny", "edges")
SEED = 2468
UNET = dict(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
            cross_attention_dim=64, norm_num_groups=32)
CONDITIONING_CHANNELS = (8, 16, 16, 32)


def build_tiny_sdxl() -> BaseComponents:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        unet = UNet2DConditionModel(**UNET)
        vae = AutoencoderKL(**VAE)
        encoders = [CLIPTextModel(tiny_text_config()), CLIPTextModelWithProjection(tiny_text_config())]
    vocab, merges = byte_level_vocab()
    return BaseComponents(
        id=TINY_SDXL_ID, family="sdxl", source="builtin", unet=unet.eval(), vae=vae.eval(),
        text_encoders=[e.eval() for e in encoders], tokenizers=[make_tokenizer(vocab, merges),
                                                                make_tokenizer(vocab, merges, pad_token="!")],
        scheduler_config=dict(SDXL_SCHEDULER), vae_decode_dtype=torch.float32, force_zeros_for_empty_prompt=True,
    )


def _unet() -> UNet2DConditionModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return UNet2DConditionModel(**UNET)


def _nonzero(convs: list[torch.nn.Module]) -> None:
    with torch.no_grad():
        for conv in convs:
            for p in conv.parameters():
                p.normal_(0.0, 0.1)


def build_tiny_sdxl_controlnet(kind: str) -> ControlNetModel | ControlNetUnionModel:
    """A dedicated tiny SDXL ControlNet for ``kind`` (depth, canny, edges) or the Union one ("union")."""
    if kind != "union" and kind not in DEDICATED_TYPES:
        raise ValueError(kind)
    unet = _unet()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + 1 + (DEDICATED_TYPES.index(kind) if kind != "union" else len(DEDICATED_TYPES)))
        if kind == "union":  # the xinsir layout at tiny width: 6 control types, a 2-head fusion transformer
            keys = ("block_out_channels", "down_block_types", "attention_head_dim", "use_linear_projection",
                    "addition_embed_type", "addition_time_embed_dim", "transformer_layers_per_block",
                    "projection_class_embeddings_input_dim", "cross_attention_dim", "layers_per_block", "in_channels")
            width = UNET["block_out_channels"][0]
            net = ControlNetUnionModel(**{k: UNET[k] for k in keys}, norm_num_groups=32,
                                       conditioning_embedding_out_channels=CONDITIONING_CHANNELS, num_control_type=6,
                                       num_trans_channel=width, num_trans_head=2, num_proj_channel=width)
            _nonzero([net.spatial_ch_projs])  # zero-initialised in real training
        else:
            net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONDITIONING_CHANNELS)
        _nonzero([*net.controlnet_down_blocks, net.controlnet_mid_block, net.controlnet_cond_embedding.conv_out])
    return net.eval()
