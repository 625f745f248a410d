"""``builtin:tiny-zimage``: a tiny random-weight Z-Image (Turbo-shaped) built in code, offline and
deterministic, with a tiny Z-Image ControlNet (the Fun-ControlNet-Union layout: one net for every unit type).

Real shapes where our code cares: 8x VAE with 16 latent channels and a shift factor, 2x2 patches,
Qwen3 hidden states (second to last layer, padding dropped) as caption features, 3-axis RoPE. Tiny
elsewhere (after diffusers' own Z-Image test config). The weights are random: it produces noise.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, ZImageControlNetModel, ZImageTransformer2DModel
from transformers import Qwen3Config, Qwen3Model

from .components import BaseComponents
from .tiny_flux import VAE, _randomize
from .tokenizers_qwen import make_byte_qwen_tokenizer

TINY_ZIMAGE_ID = "builtin:tiny-zimage"
TINY_ZIMAGE_CONTROLNET_ID = "builtin:tiny-zimage-controlnet"
SEED = 5678
MAX_SEQUENCE_LENGTH = 64

TRANSFORMER = dict(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2, n_refiner_layers=1,
                   n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True, cap_feat_dim=16, rope_theta=256.0,
                   t_scale=1000.0, axes_dims=[8, 4, 4], axes_lens=[256, 32, 32])
CONTROLNET = dict(control_layers_places=[0], control_refiner_layers_places=[0], control_in_dim=16,
                  add_control_noise_refiner="control_noise_refiner", all_patch_size=(2,), all_f_patch_size=(1,),
                  dim=32, n_refiner_layers=1, n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True)
TEXT = dict(hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
            max_position_embeddings=512)
# Tongyi-MAI/Z-Image-Turbo scheduler/scheduler_config.json
ZIMAGE_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0,
                    "use_dynamic_shifting": False}


def build_tiny_zimage() -> BaseComponents:
    tokenizer = make_byte_qwen_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        transformer = ZImageTransformer2DModel(**TRANSFORMER)
        vae = AutoencoderKL(**VAE)
        text = Qwen3Model(Qwen3Config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **TEXT))
    return BaseComponents(
        id=TINY_ZIMAGE_ID, family="zimage", source="builtin", unet=None, vae=vae.eval(), text_encoders=[text.eval()],
        tokenizers=[tokenizer], scheduler_config=dict(ZIMAGE_SCHEDULER), vae_decode_dtype=torch.float32,
        transformer=transformer.eval(), extra={"max_sequence_length": MAX_SEQUENCE_LENGTH},
    )


def build_tiny_zimage_controlnet() -> ZImageControlNetModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + 1)
        net = ZImageControlNetModel(**CONTROLNET)
        _randomize([net.control_layers])  # after_proj layers start at zero in real training
    return net.eval()
