"""Write a diffusers SD1.5-shaped model as an original (LDM / A1111-style) single-file checkpoint.

The inverse of diffusers' ``convert_ldm_*`` functions, written generically from the configs so that it
works for the tiny test model too. Used only to make single-file fixtures; the backend never writes these.
"""

from __future__ import annotations

import re

import torch

RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
          ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
       "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:  # noqa: ANN001
    cfg = unet.config
    per = cfg.layers_per_block
    n_levels = len(cfg.block_out_channels)
    up_has_attn = ["CrossAttn" in t for t in cfg.up_block_types]
    out: dict[str, torch.Tensor] = {}
    for key, value in unet.state_dict().items():
        name = key
        if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            k = 1 + i * (per + 1) + j
            if kind == "resnets":
                for a, b in RESNET:
                    rest = re.sub(rf"^{a}\.", f"{b}.", rest)
            name = f"input_blocks.{k}.{0 if kind == 'resnets' else 1}.{rest}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            name = f"input_blocks.{(int(m[1]) + 1) * (per + 1)}.0.op.{m[2]}"
        elif m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            if kind == "resnets":
                for a, b in RESNET:
                    rest = re.sub(rf"^{a}\.", f"{b}.", rest)
            name = f"output_blocks.{i * (per + 1) + j}.{0 if kind == 'resnets' else 1}.{rest}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
            i = int(m[1])
            name = f"output_blocks.{i * (per + 1) + per}.{2 if up_has_attn[i] else 1}.{m[2]}"
        elif m := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
            kind, j, rest = m[1], int(m[2]), m[3]
            if kind == "resnets":
                for a, b in RESNET:
                    rest = re.sub(rf"^{a}\.", f"{b}.", rest)
            name = f"middle_block.{2 * j if kind == 'resnets' else 1}.{rest}"
        else:
            for a, b in TOP.items():
                if key.startswith(a + "."):
                    name = b + key[len(a):]
        assert n_levels >= 1
        out["model.diffusion_model." + name] = value
    return out


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:  # noqa: ANN001
    n = len(vae.config.block_out_channels)
    out: dict[str, torch.Tensor] = {}
    for key, value in vae.state_dict().items():
        name = key.replace("conv_norm_out", "norm_out")
        name = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)", r"encoder.down.\1.block.\2", name)
        name = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0", r"encoder.down.\1.downsample", name)
        name = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)",
                      lambda m: f"decoder.up.{n - 1 - int(m[1])}.block.{m[2]}", name)
        name = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0",
                      lambda m: f"decoder.up.{n - 1 - int(m[1])}.upsample", name)
        name = re.sub(r"mid_block\.resnets\.(\d+)", lambda m: f"mid.block_{int(m[1]) + 1}", name)
        if "mid_block.attentions.0." in name:
            name = name.replace("mid_block.attentions.0.", "mid.attn_1.")
            for a, b in [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]:
                name = name.replace(f".{a}.", f".{b}.")
            if value.ndim == 2:
                value = value[:, :, None, None]  # LDM's VAE attention uses 1x1 convolutions
        name = name.replace("conv_shortcut", "nin_shortcut")
        out["first_stage_model." + name] = value
    return out


def text_encoder_to_ldm(encoder) -> dict[str, torch.Tensor]:  # noqa: ANN001
    out = {}
    for key, value in encoder.state_dict().items():
        key = key if key.startswith("text_model.") else "text_model." + key
        out["cond_stage_model.transformer." + key] = value
    return out


def sd15_single_file(base) -> dict[str, torch.Tensor]:  # noqa: ANN001
    sd = {**unet_to_ldm(base.unet), **vae_to_ldm(base.vae), **text_encoder_to_ldm(base.text_encoders[0])}
    return {k: v.contiguous() for k, v in sd.items()}
