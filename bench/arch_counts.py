"""Parameter counts of the families' real architectures, built on the meta device (no weights, no
download). Used by bench/memory_modes.py and checked against backend/models/memory.py's PARAMS."""

from __future__ import annotations

from collections.abc import Callable

import torch

# Real configs (the reference repos' config.json files, written out: nothing is downloaded).
T5_XXL = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, vocab_size=32128,
              feed_forward_proj="gated-gelu", relative_attention_num_buckets=32)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              projection_dim=768, vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu")
CLIP_G = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
              projection_dim=1280, vocab_size=49408, max_position_embeddings=77, hidden_act="gelu")
QWEN3_4B = dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
                num_key_value_heads=8, head_dim=128, vocab_size=151936, tie_word_embeddings=True)
# Qwen-Image's text encoder: Qwen2.5-VL-7B-Instruct (language model and vision tower).
QWEN25_VL_7B_TEXT = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False)
QWEN25_VL_7B_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584)
FLUX_VAE = dict(latent_channels=16, block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, use_quant_conv=False,
                use_post_quant_conv=False)
SD_VAE = dict(latent_channels=4, block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
              up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2)


def _flux() -> torch.nn.Module:
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(guidance_embeds=True)  # diffusers' defaults are FLUX.1 [dev]'s config


def _zimage() -> torch.nn.Module:
    from diffusers import ZImageTransformer2DModel

    return ZImageTransformer2DModel()  # defaults: Z-Image-Turbo's config


def _qwen() -> torch.nn.Module:
    from diffusers import QwenImageTransformer2DModel

    return QwenImageTransformer2DModel()  # defaults: Qwen-Image's config


def _sd_unet(xl: bool) -> torch.nn.Module:
    from backend.models.configs import config_folder
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(
        str(config_folder("sdxl" if xl else "sd15")), subfolder="unet"))


def _vae(cfg: dict) -> torch.nn.Module:
    from diffusers import AutoencoderKL

    return AutoencoderKL(**cfg)


def _qwen_vae() -> torch.nn.Module:
    from diffusers import AutoencoderKLQwenImage

    return AutoencoderKLQwenImage()


def _t5() -> torch.nn.Module:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(**T5_XXL))


def _clip(cfg: dict, projection: bool) -> torch.nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(CLIPTextConfig(**cfg))


def _qwen3() -> torch.nn.Module:
    from transformers import Qwen3Config, Qwen3Model

    return Qwen3Model(Qwen3Config(**QWEN3_4B))


def _qwen25vl() -> torch.nn.Module:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    return Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(text_config=QWEN25_VL_7B_TEXT,
                                                               vision_config=QWEN25_VL_7B_VISION))


BUILDERS: dict[str, dict[str, Callable[[], torch.nn.Module]]] = {
    "sd15": {"unet": lambda: _sd_unet(False), "text_encoder": lambda: _clip(CLIP_L, False), "vae": lambda: _vae(SD_VAE)},
    "sdxl": {"unet": lambda: _sd_unet(True), "text_encoder": lambda: _clip(CLIP_L, False),
             "text_encoder_2": lambda: _clip(CLIP_G, True), "vae": lambda: _vae(SD_VAE)},
    "flux": {"transformer": _flux, "text_encoder": lambda: _clip(CLIP_L, False), "text_encoder_2": _t5,
             "vae": lambda: _vae(FLUX_VAE)},
    "zimage": {"transformer": _zimage, "text_encoder": _qwen3, "vae": lambda: _vae(FLUX_VAE)},
    "qwen": {"transformer": _qwen, "text_encoder": _qwen25vl, "vae": _qwen_vae},
}


def count(builder: Callable[[], torch.nn.Module]) -> int:
    """Parameters of a module built on the meta device (shared tensors counted once)."""
    with torch.device("meta"):
        module = builder()
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def count_family(family: str) -> dict[str, int]:
    return {name: count(b) for name, b in BUILDERS[family].items()}


if __name__ == "__main__":
    for fam in BUILDERS:
        print(fam, count_family(fam))
