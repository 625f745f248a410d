"""``builtin:tiny-flux`` (dev-shaped, guidance embedding) and ``builtin:tiny-flux-schnell`` (no guidance
input): tiny random-weight FLUX.1 models built in code, offline and deterministic, plus tiny FLUX
ControlNets (one per unit type, and a Union one with control modes).

The shapes our code paths care about are the real ones: an 8x VAE with 16 latent channels and a
shift factor, 2x2 latent packing (transformer ``in_channels`` = 64), 3-axis RoPE image ids, CLIP's
pooled output + T5 hidden states. Everything else is tiny (after diffusers' own tiny Flux test
configs): one double-stream and one single-stream block, 2 heads of 16. The weights are random:
**it produces noise** and exists for tests and install checks.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, FluxControlNetModel, FluxTransformer2DModel
from transformers import CLIPTextModel, T5Config, T5EncoderModel

from .components import BaseComponents
from .tiny import CONTROLNET_TYPES, tiny_text_config
from .tokenizers import byte_level_vocab, make_tokenizer
from .tokenizers_t5 import make_byte_t5_tokenizer

TINY_FLUX_ID = "builtin:tiny-flux"
TINY_FLUX_SCHNELL_ID = "builtin:tiny-flux-schnell"
TINY_FLUX_CONTROLNET_PREFIX = "builtin:tiny-flux-controlnet-"
TINY_FLUX_UNION_ID = "builtin:tiny-flux-controlnet-union"
SEED = 4321
MAX_SEQUENCE_LENGTH = 32  # T5 tokens (the real dev model uses 512, schnell 256)

TRANSFORMER = dict(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
                   num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                   axes_dims_rope=(4, 4, 8))
VAE = dict(in_channels=3, out_channels=3, latent_channels=16, layers_per_block=1,
           block_out_channels=(16, 16, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8, sample_size=64,
           use_quant_conv=False, use_post_quant_conv=False, scaling_factor=0.3611, shift_factor=0.1159)
T5 = dict(d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
          feed_forward_proj="gated-gelu", dropout_rate=0.0)
# FLUX.1's scheduler config (black-forest-labs/FLUX.1-dev scheduler/scheduler_config.json).
FLUX_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0,
                  "use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
                  "max_image_seq_len": 4096}
FLUX_SCHNELL_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000,
                          "shift": 1.0, "use_dynamic_shifting": False}
UNION_MODES = 10  # InstantX/Shakker FLUX Union ControlNets have 10 mode embeddings


def _randomize(modules: list[torch.nn.Module]) -> None:
    """Real ControlNets start with zero output layers; random ones make the residuals matter in tests."""
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p.normal_(0.0, 0.1)


def _build(model_id: str, family: str, guidance: bool, scheduler: dict) -> BaseComponents:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        transformer = FluxTransformer2DModel(**TRANSFORMER, guidance_embeds=guidance)
        vae = AutoencoderKL(**VAE)
        clip = CLIPTextModel(tiny_text_config())
        t5_tokenizer = make_byte_t5_tokenizer()
        t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tokenizer), pad_token_id=t5_tokenizer.pad_token_id,
                                     eos_token_id=t5_tokenizer.eos_token_id, **T5))
    vocab, merges = byte_level_vocab()
    return BaseComponents(
        id=model_id, family=family, source="builtin", unet=None, vae=vae.eval(),
        text_encoders=[clip.eval(), t5.eval()], tokenizers=[make_tokenizer(vocab, merges), t5_tokenizer],
        scheduler_config=dict(scheduler), vae_decode_dtype=torch.float32, transformer=transformer.eval(),
        extra={"max_sequence_length": MAX_SEQUENCE_LENGTH},
    )


def build_tiny_flux() -> BaseComponents:
    return _build(TINY_FLUX_ID, "flux", True, FLUX_SCHEDULER)


def build_tiny_flux_schnell() -> BaseComponents:
    return _build(TINY_FLUX_SCHNELL_ID, "flux-schnell", False, FLUX_SCHNELL_SCHEDULER)


def build_tiny_flux_controlnet(kind: str) -> FluxControlNetModel:
    """A tiny InstantX-style FLUX ControlNet (VAE-latent conditioning) seeded by its type; ``union``
    has control-mode embeddings and serves every type."""
    if kind != "union" and kind not in CONTROLNET_TYPES:
        raise ValueError(kind)
    index = len(CONTROLNET_TYPES) if kind == "union" else CONTROLNET_TYPES.index(kind)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + 1 + index)
        net = FluxControlNetModel(**TRANSFORMER, guidance_embeds=True,
                                  num_mode=UNION_MODES if kind == "union" else None)
        _randomize([net.controlnet_blocks, net.controlnet_single_blocks, net.controlnet_x_embedder])
    return net.eval()
