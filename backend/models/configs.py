"""Diffusers configs for SD1.5 and SDXL, so single-file checkpoints load with no network at all.

``from_single_file`` looks a checkpoint's architecture up on the hub unless ``config=`` names a local
diffusers folder. We keep those configs here as data (they are the published
runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-xl-base-1.0 configs) and write them, plus
the CLIP tokenizer rebuilt from the shipped BPE merges, into a folder under the user cache on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .tokenizers import EOS, clip_bpe_vocab, write_tokenizer_files

SD15_SCHEDULER = {
    "_class_name": "PNDMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "steps_offset": 1, "clip_sample": False, "set_alpha_to_one": False,
    "skip_prk_steps": True, "prediction_type": "epsilon", "timestep_spacing": "leading",
}
SDXL_SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085,
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "steps_offset": 1, "clip_sample": False,
    "set_alpha_to_one": False, "skip_prk_steps": True, "prediction_type": "epsilon",
    "timestep_spacing": "leading", "interpolation_type": "linear", "use_karras_sigmas": False,
}

_VAE = {
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
}
SD15_VAE = {**_VAE, "sample_size": 512, "scaling_factor": 0.18215}
SDXL_VAE = {**_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}

SD15_UNET = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False, "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "out_channels": 4,
    "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-5, "norm_num_groups": 32, "sample_size": 64,
}
SDXL_UNET = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280], "center_input_sample": False, "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "downsample_padding": 1, "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": 4, "out_channels": 4,
    "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-5, "norm_num_groups": 32,
    "projection_class_embeddings_input_dim": 2816, "sample_size": 128, "transformer_layers_per_block": [1, 2, 10],
    "use_linear_projection": True,
}
CLIP_L = {
    "architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "attention_dropout": 0.0,
    "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, "hidden_act": "quick_gelu", "hidden_size": 768,
    "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-5,
    "max_position_embeddings": 77, "num_attention_heads": 12, "num_hidden_layers": 12, "projection_dim": 768,
    "vocab_size": 49408,
}
OPENCLIP_BIGG = {
    **CLIP_L, "architectures": ["CLIPTextModelWithProjection"], "hidden_act": "gelu", "hidden_size": 1280,
    "intermediate_size": 5120, "num_attention_heads": 20, "num_hidden_layers": 32, "projection_dim": 1280,
}

_CONTROLNET_KEYS = ("attention_head_dim", "block_out_channels", "cross_attention_dim", "down_block_types",
                    "downsample_padding", "flip_sin_to_cos", "freq_shift", "in_channels", "layers_per_block",
                    "mid_block_scale_factor", "norm_eps", "norm_num_groups", "addition_embed_type",
                    "addition_time_embed_dim", "projection_class_embeddings_input_dim",
                    "transformer_layers_per_block", "use_linear_projection")


def controlnet_config_of(unet: dict) -> dict:
    """A ControlNet is the UNet's encoder half plus an 8x conditioning embedding."""
    cfg = {k: unet[k] for k in _CONTROLNET_KEYS if k in unet}
    return {"_class_name": "ControlNetModel", **cfg, "conditioning_embedding_out_channels": [16, 32, 96, 256],
            "controlnet_conditioning_channel_order": "rgb"}


FAMILY_CONFIGS: dict[str, dict[str, dict]] = {
    "sd15": {"unet/config.json": SD15_UNET, "controlnet/config.json": controlnet_config_of(SD15_UNET),
             "vae/config.json": SD15_VAE, "text_encoder/config.json": CLIP_L,
             "scheduler/scheduler_config.json": SD15_SCHEDULER},
    "sdxl": {"unet/config.json": SDXL_UNET, "controlnet/config.json": controlnet_config_of(SDXL_UNET),
             "vae/config.json": SDXL_VAE, "text_encoder/config.json": CLIP_L,
             "text_encoder_2/config.json": OPENCLIP_BIGG, "scheduler/scheduler_config.json": SDXL_SCHEDULER},
}
TOKENIZER_PADS = {"sd15": {"tokenizer": EOS}, "sdxl": {"tokenizer": EOS, "tokenizer_2": "!"}}


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "scenecast"


def config_folder(family: str, inpainting: bool = False) -> Path:
    """A local diffusers config folder for ``family`` (written once, atomically, then reused)."""
    files = {name: dict(cfg) for name, cfg in FAMILY_CONFIGS[family].items()}
    if inpainting:
        files["unet/config.json"]["in_channels"] = 9
    blob = json.dumps([files, TOKENIZER_PADS[family]], sort_keys=True).encode()
    name = f"{family}{'-inpainting' if inpainting else ''}-{hashlib.sha256(blob).hexdigest()[:12]}"
    target = cache_root() / "configs" / name
    if (target / "done").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        for rel, cfg in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(json.dumps(cfg, indent=1))
        vocab, merges = clip_bpe_vocab()
        for sub, pad in TOKENIZER_PADS[family].items():
            write_tokenizer_files(tmp / sub, vocab, merges, pad_token=pad)
        (tmp / "done").write_text("")
        try:
            tmp.rename(target)
        except OSError:  # another process won the race; theirs is identical
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
