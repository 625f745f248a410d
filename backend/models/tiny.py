"""``builtin:tiny``: a tiny random-weight SD1.5-shaped model built in code, offline and deterministic.

It has the real model's shape where the code paths care (8x VAE, 4 latent channels, cross-attention
from a CLIP text encoder, ControlNets with 8x conditioning embedding, 13-ish residuals) and is small
enough to run 4 steps at 64x64 in well under a second on a laptop CPU. Its weights are random (fixed
seeds), so it **produces noise**: it exists for tests, CI and checking that an install works.

Each ControlNet type gets its own seed, and, unlike a fresh real ControlNet, its zero-convolutions are
random too — otherwise every residual would be exactly zero and weight/start/end would have no effect.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from .components import BaseComponents
from .configs import SD15_SCHEDULER
from .tokenizers import byte_level_vocab, make_tokenizer

TINY_ID = "builtin:tiny"
CONTROLNET_TYPES = ("depth", "normal", "edges", "canny", "lineart", "segmentation", "other")
TINY_CONTROLNET_PREFIX = "builtin:tiny-controlnet-"
SEED = 1234

UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
)
VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, block_out_channels=(16, 16, 32, 32),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    norm_num_groups=8, sample_size=64, scaling_factor=0.18215,
)
TEXT = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
            max_position_embeddings=77, projection_dim=32, layer_norm_eps=1e-5, hidden_act="quick_gelu")
CONTROLNET = dict(
    in_channels=4, layers_per_block=1, block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), cross_attention_dim=32, attention_head_dim=8,
    norm_num_groups=32, conditioning_embedding_out_channels=(8, 16, 16, 32),
)


def tiny_text_config() -> CLIPTextConfig:
    vocab, _ = byte_level_vocab()
    return CLIPTextConfig(vocab_size=len(vocab), bos_token_id=vocab["<|startoftext|>"],
                          eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"], **TEXT)


def build_tiny_base() -> BaseComponents:
    """The tiny base model on the CPU in float32; the manager moves it to its device and dtype."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        unet = UNet2DConditionModel(**UNET)
        vae = AutoencoderKL(**VAE)
        text_encoder = CLIPTextModel(tiny_text_config())
    vocab, merges = byte_level_vocab()
    return BaseComponents(
        id=TINY_ID, family="sd15", source="builtin", unet=unet.eval(), vae=vae.eval(),
        text_encoders=[text_encoder.eval()], tokenizers=[make_tokenizer(vocab, merges)],
        scheduler_config=dict(SD15_SCHEDULER), vae_decode_dtype=torch.float32,
    )


def build_tiny_controlnet(kind: str) -> ControlNetModel:
    """A tiny ControlNet matching :func:`build_tiny_base`'s UNet, seeded by its type."""
    if kind not in CONTROLNET_TYPES:
        raise ValueError(kind)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + 1 + CONTROLNET_TYPES.index(kind))
        net = ControlNetModel(**CONTROLNET)
        with torch.no_grad():  # make the zero-convs non-zero (see the module docstring)
            zero_convs = [*net.controlnet_down_blocks, net.controlnet_mid_block, net.controlnet_cond_embedding.conv_out]
            for conv in zero_convs:
                conv.weight.normal_(0.0, 0.1)
                conv.bias.normal_(0.0, 0.1)
    return net.eval()
