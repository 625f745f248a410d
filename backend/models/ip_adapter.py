"""IP-Adapters (style/reference images for SD1.5 and SDXL): the adapter's weights and its CLIP image encoder.

An :class:`IPAdapter` holds what diffusers' ``load_ip_adapter`` would read — the state dict split into
``image_proj`` and ``ip_adapter`` parts, and a ``CLIPVisionModelWithProjection`` — without a pipeline
class; ``pipelines/reference.py`` installs it on our UNet for one stage (``_load_ip_adapter_weights``)
and takes it off again.

Ids:
* ``builtin:tiny-ip-adapter``: random weights built in code to fit the job's tiny base (builtin:tiny or
  builtin:tiny-sdxl), with a tiny random CLIP vision encoder. It produces noise, for tests.
* ``h94/IP-Adapter:<file>.safetensors``: a file of that hub repo; the image encoder is the repo's
  ``models/image_encoder`` (ViT-H) or, for ``sdxl_models/ip-adapter_sdxl.safetensors``,
  ``sdxl_models/image_encoder`` (ViT-bigG). Only safetensors files are loaded.
* a local ``.safetensors`` file with a ``image_encoder/`` folder beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import ModelNotFound, UnsupportedModel

TINY_IP_ADAPTER_ID = "builtin:tiny-ip-adapter"
IP_ADAPTER_REPO = "h94/IP-Adapter"
#: The IP-Adapter a reference gets on each family when it names none (docs/models.md).
DEFAULT_IP_ADAPTERS = {
    "sd15": f"{IP_ADAPTER_REPO}:models/ip-adapter_sd15.safetensors",
    "sdxl": f"{IP_ADAPTER_REPO}:sdxl_models/ip-adapter_sdxl.safetensors",
}
TINY_BASES = ("builtin:tiny", "builtin:tiny-sdxl")
SEED = 4321
TINY_VISION = dict(hidden_size=32, intermediate_size=37, projection_dim=32, num_hidden_layers=2,
                   num_attention_heads=4, image_size=32, patch_size=8, hidden_act="quick_gelu")


@dataclass
class IPAdapter:
    id: str
    state_dict: dict[str, dict[str, torch.Tensor]]  # {"image_proj": ..., "ip_adapter": ...}
    image_encoder: Any  # CLIPVisionModelWithProjection
    image_size: int  # the encoder's square input side

    @property
    def hidden_states(self) -> bool:
        """IP-Adapter Plus and Full Face read the encoder's penultimate hidden states, not its image embeds."""
        return "proj.weight" not in self.state_dict["image_proj"]

    def nbytes(self) -> int:
        tensors = [t for part in self.state_dict.values() for t in part.values()]
        return sum(t.numel() * t.element_size() for t in tensors) + sum(
            p.numel() * p.element_size() for p in self.image_encoder.parameters())


#: Families with a reference-image input (IP-Adapter on UNets, Redux on FLUX.1); docs/models.md.
REFERENCE_FAMILIES = ("sd15", "sdxl", "flux", "flux-schnell")


def check_reference_family(family: str | None) -> None:
    """Refuse reference images on a family that has no reference input (None: not known yet, allowed)."""
    if family is not None and family not in REFERENCE_FAMILIES:
        raise UnsupportedModel(f"reference images are not supported for {family} models",
                               "references work on sd15/sdxl (IP-Adapter) and flux (Redux); see docs/models.md")


def default_ip_adapter(base_id: str, family: str) -> str:
    if base_id in TINY_BASES:
        return TINY_IP_ADAPTER_ID
    if family not in DEFAULT_IP_ADAPTERS:
        raise UnsupportedModel(f"reference images are not supported for {family} models",
                               "IP-Adapter references work on sd15 and sdxl; see docs/models.md")
    return DEFAULT_IP_ADAPTERS[family]


def cross_attention_layout(unet: Any) -> list[tuple[int, int]]:
    """(key id, hidden size) of every cross-attention processor, numbered as the IP-Adapter files and
    diffusers' ``_convert_ip_adapter_attn_to_diffusers`` number them (1, 3, 5, ...)."""
    out, key_id = [], 1
    cfg = unet.config
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = cfg.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(cfg.block_out_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = cfg.block_out_channels[int(name[len("down_blocks.")])]
        out.append((key_id, hidden))
        key_id += 2
    return out


def build_tiny_ip_adapter(unet: Any) -> IPAdapter:
    """Random IP-Adapter weights (plain IP-Adapter: 4 image tokens) shaped for ``unet``, and a tiny CLIP
    vision encoder. Deterministic; the weights are scaled up so that a reference visibly changes the image."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection  # noqa: PLC0415

    cross = unet.config.cross_attention_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + cross)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_VISION)).eval()
        embed = TINY_VISION["projection_dim"]
        image_proj = {"proj.weight": torch.randn(4 * cross, embed) * 0.3, "proj.bias": torch.randn(4 * cross) * 0.1,
                      "norm.weight": 1.0 + torch.randn(cross) * 0.1, "norm.bias": torch.randn(cross) * 0.1}
        ip = {}
        for key_id, hidden in cross_attention_layout(unet):
            ip[f"{key_id}.to_k_ip.weight"] = torch.randn(hidden, cross) * 0.5
            ip[f"{key_id}.to_v_ip.weight"] = torch.randn(hidden, cross) * 0.5
    return IPAdapter(TINY_IP_ADAPTER_ID, {"image_proj": image_proj, "ip_adapter": ip}, encoder,
                     TINY_VISION["image_size"])


def split_state_dict(flat: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """A flat IP-Adapter safetensors file (``image_proj.*``, ``ip_adapter.*``) as diffusers' loader splits it."""
    out: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
    for key, value in flat.items():
        part, _, rest = key.partition(".")
        if part not in out:
            raise UnsupportedModel(f"unexpected key {key!r} in an IP-Adapter file",
                                   "use an IP-Adapter .safetensors file (image_proj.* and ip_adapter.* keys)")
        out[part][rest] = value
    if not out["image_proj"] or not out["ip_adapter"]:
        raise UnsupportedModel("this file is not an IP-Adapter (no image_proj/ip_adapter weights)",
                               "use an IP-Adapter .safetensors file")
    return out


def _files(model_id: str) -> tuple[Path, Path]:
    """The adapter file and its image encoder folder, downloading them from the hub when needed."""
    if model_id.endswith(".safetensors") and Path(model_id).expanduser().is_file():
        path = Path(model_id).expanduser()
        encoder = path.parent / "image_encoder"
        if not encoder.is_dir():
            raise ModelNotFound(f"no image_encoder/ folder beside {path}",
                                "put the IP-Adapter's CLIP image encoder (diffusers folder) in image_encoder/ next to it")
        return path, encoder
    repo, sep, file = model_id.partition(":")
    if not sep or not file.endswith(".safetensors"):
        if model_id.endswith((".bin", ".pt", ".pth", ".ckpt")):
            raise UnsupportedModel(f"{model_id}: only .safetensors IP-Adapters are loaded (pickle files can run code)",
                                   "use the .safetensors file of the same adapter")
        raise ModelNotFound(f"IP-Adapter {model_id!r} is not a hub 'repo:file.safetensors' or a local .safetensors file",
                            f"e.g. {DEFAULT_IP_ADAPTERS['sd15']}")
    from huggingface_hub import hf_hub_download, snapshot_download  # noqa: PLC0415

    encoder_dir = "sdxl_models/image_encoder" if file == "sdxl_models/ip-adapter_sdxl.safetensors" else "models/image_encoder"
    path = Path(hf_hub_download(repo, file))
    root = Path(snapshot_download(repo, allow_patterns=[f"{encoder_dir}/config.json", f"{encoder_dir}/*.safetensors"]))
    return path, root / encoder_dir


def load_ip_adapter(model_id: str, unet: Any) -> IPAdapter:
    """The adapter on the CPU in float32 (the manager places it)."""
    if model_id == TINY_IP_ADAPTER_ID:
        return build_tiny_ip_adapter(unet)
    from safetensors.torch import load_file  # noqa: PLC0415
    from transformers import CLIPVisionModelWithProjection  # noqa: PLC0415

    path, encoder_dir = _files(model_id)
    state = split_state_dict(load_file(str(path)))
    encoder = CLIPVisionModelWithProjection.from_pretrained(encoder_dir, use_safetensors=True).eval()
    return IPAdapter(model_id, state, encoder, int(encoder.config.image_size))


def fits(adapter: IPAdapter, unet: Any) -> bool:
    """Whether the adapter's key/value projections match ``unet``'s cross-attention layers."""
    ip = adapter.state_dict["ip_adapter"]
    for key_id, hidden in cross_attention_layout(unet):
        w = ip.get(f"{key_id}.to_k_ip.weight")
        if w is None or tuple(w.shape) != (hidden, unet.config.cross_attention_dim):
            return False
    return True
