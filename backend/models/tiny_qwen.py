"""``builtin:tiny-qwen``: a tiny random-weight Qwen-Image built in code, offline and deterministic, with a
tiny Qwen-Image ControlNet (the InstantX Union layout: one net for every unit type, no mode input).

Real shapes where our code cares: the Qwen-Image VAE (a causal 3D VAE: 5D latents, one frame, 8x,
16 channels normalised by per-channel mean/std), 2x2 packing, Qwen2.5-VL hidden states after the
system-prompt template. Tiny elsewhere (after diffusers' own Qwen-Image test config). Random weights:
it produces noise.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLQwenImage, QwenImageControlNetModel, QwenImageTransformer2DModel
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from .components import BaseComponents
from .tiny_flux import _randomize
from .tokenizers_qwen import make_byte_qwen_tokenizer

TINY_QWEN_ID = "builtin:tiny-qwen"
TINY_QWEN_CONTROLNET_ID = "builtin:tiny-qwen-controlnet"
SEED = 8765
MAX_SEQUENCE_LENGTH = 64
Z = 16
SHAPE = dict(patch_size=2, in_channels=Z * 4, out_channels=Z, num_layers=2, attention_head_dim=16,
             num_attention_heads=3, joint_attention_dim=16, axes_dims_rope=(8, 4, 4))
VAE = dict(base_dim=8, z_dim=Z, dim_mult=[1, 2, 4, 4], num_res_blocks=1, temperal_downsample=[False, True, True],
           latents_mean=[round(-0.8 + 0.1 * k, 2) for k in range(Z)],
           latents_std=[round(0.6 + 0.15 * k, 2) for k in range(Z)])
# Qwen/Qwen-Image scheduler/scheduler_config.json
QWEN_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 1.0,
                  "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 0.9, "base_image_seq_len": 256,
                  "max_image_seq_len": 8192, "shift_terminal": 0.02, "time_shift_type": "exponential"}


def _text_config(tokenizer) -> Qwen2_5_VLConfig:  # noqa: ANN001
    ids = tokenizer.convert_tokens_to_ids
    return Qwen2_5_VLConfig(
        text_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 2, "vocab_size": len(tokenizer), "rope_theta": 1_000_000.0,
                     "bos_token_id": ids("<|endoftext|>"), "eos_token_id": ids("<|im_end|>"),
                     "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"}},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16, vocab_size=len(tokenizer), bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"), vision_token_id=ids("<|image_pad|>"),
        image_token_id=ids("<|image_pad|>"))


def _make_text_matter(transformer: QwenImageTransformer2DModel) -> None:
    """At default init the tiny transformer's output hardly depends on the prompt (<1%), so tests could
    not see CFG or text-path mistakes; random modulation and sharper attention make it ~75%."""
    with torch.no_grad():
        for block in transformer.transformer_blocks:
            for p in [*block.img_mod.parameters(), *block.txt_mod.parameters()]:
                p.normal_(0.0, 0.5)
            for p in block.attn.parameters():
                p.mul_(3.0)


def build_tiny_qwen() -> BaseComponents:
    tokenizer = make_byte_qwen_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        transformer = QwenImageTransformer2DModel(**SHAPE, guidance_embeds=False)
        _make_text_matter(transformer)
        vae = AutoencoderKLQwenImage(**VAE)
        text = Qwen2_5_VLForConditionalGeneration(_text_config(tokenizer))
    return BaseComponents(
        id=TINY_QWEN_ID, family="qwen", source="builtin", unet=None, vae=vae.eval(), text_encoders=[text.eval()],
        tokenizers=[tokenizer], scheduler_config=dict(QWEN_SCHEDULER), vae_decode_dtype=torch.float32,
        transformer=transformer.eval(),
        extra={"max_sequence_length": MAX_SEQUENCE_LENGTH, "prompt_drop": prompt_drop(tokenizer)},
    )


def prompt_drop(tokenizer) -> int:  # noqa: ANN001
    """How many tokens the template's system part is in this tokenizer (34 in Qwen2.5-VL's own)."""
    from ..pipelines.flow_prompt import QWEN_TEMPLATE  # noqa: PLC0415

    return len(tokenizer(QWEN_TEMPLATE.split("{}")[0]).input_ids)


def build_tiny_qwen_controlnet() -> QwenImageControlNetModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + 1)
        net = QwenImageControlNetModel(**SHAPE)
        _randomize([net.controlnet_blocks, net.controlnet_x_embedder])  # zero-initialised in real training
    return net.eval()
