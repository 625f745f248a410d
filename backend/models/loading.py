"""Turning a located model into modules: diffusers folders (hub cache or local), single .safetensors
files (offline, with the configs from :mod:`configs`), and builtins. Only ``safetensors`` is ever read.

Everything is loaded on the CPU in the target dtype; :class:`~backend.models.manager.ModelManager` then
moves it to the device and applies its memory-format settings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import AutoencoderKL, ControlNetModel, ControlNetUnionModel, UNet2DConditionModel
from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
from huggingface_hub import snapshot_download
from huggingface_hub.utils import tqdm as hf_tqdm
from safetensors.torch import load_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from .components import BaseComponents
from .configs import config_folder
from .families import classify_header, is_flow, read_safetensors_header
from .loading_flow import flow_controlnet_class, flow_family_of_folder, load_flow_folder, refuse_flow_single_file
from .errors import Cancelled, ModelNotFound, UnsupportedModel
from .sources import BASE_COMPONENTS, family_of_config, Located, check_weights, classify_single_file, hub_snapshot
from .builtins import BASES, CONTROLNETS

log = logging.getLogger("scenecast.models")
DownloadCallback = Callable[[str, int, int | None], None]  # (model id, done bytes, total bytes)
SDXL_FP16_FIX_VAE = "madebyollin/sdxl-vae-fp16-fix"


def _variant(folder: Path) -> str | None:
    """Diffusers loads ``*.safetensors`` by default; use the fp16 variant when it is all there is."""
    names = [p.name for p in folder.glob("*.safetensors")]
    if any(n.count(".") == 1 for n in names):
        return None
    return "fp16" if any(".fp16." in n for n in names) else None


# Hub repos also hold single-file checkpoints at their root (SD1.5: v1-5-pruned*.safetensors, 4–8 GB
# each; SDXL: sd_xl_base_1.0*.safetensors) that the diffusers layout does not use: fetch only the
# components' folders (base models) or the root config + weights (ControlNets).
HUB_IGNORE = ["safety_checker/*", "vae_1_0/*", "*.ckpt", "*.bin", "*.pt", "*.pth", "*.onnx", "*.msgpack", "*.h5"]


def hub_patterns(fp16: bool) -> list[str]:
    variant = ".fp16" if fp16 else ""
    return ["model_index.json", "config.json", "*/*.json", "*/*.txt", "*/spiece.model",
            f"diffusion_pytorch_model{variant}.safetensors",
            f"*/diffusion_pytorch_model{variant}.safetensors", f"*/model{variant}.safetensors",
            # sharded weights (FLUX.1/Qwen-Image transformers, T5, Qwen text encoders)
            f"*/diffusion_pytorch_model{variant}-*-of-*.safetensors", f"*/model{variant}-*-of-*.safetensors",
            f"*/diffusion_pytorch_model-*-of-*{variant}.safetensors", f"*/model-*-of-*{variant}.safetensors"]


def download(repo_id: str, fp16: bool, on_progress: DownloadCallback | None) -> Path:
    """Fetch a diffusers repo into the HF cache (safetensors and configs only), reporting bytes."""

    class _Report(hf_tqdm):  # type: ignore[misc, valid-type]
        def update(self, n: float | None = 1) -> bool | None:
            out = super().update(n)
            if on_progress and getattr(self, "unit", "") == "B":
                on_progress(repo_id, int(self.n), int(self.total) if self.total else None)
            return out

    log.info("downloading %s into the Hugging Face cache", repo_id)
    try:
        path = snapshot_download(repo_id, allow_patterns=hub_patterns(fp16), ignore_patterns=HUB_IGNORE,
                                 tqdm_class=_Report)
    except Cancelled:
        raise  # the progress callback stopped the download: the job was cancelled
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one actionable error
        raise ModelNotFound(f"could not download {repo_id!r}: {exc}",
                            f"check the id and your connection, or fetch it with `hf download {repo_id}`") from exc
    snap = Path(path)
    if fp16 and not any(snap.glob("unet/*.safetensors")) and not any(snap.glob("*.safetensors")):
        return download(repo_id, False, on_progress)  # no fp16 variant published
    return snap


def _family_of(unet: UNet2DConditionModel, model_id: str) -> str:
    family = family_of_config(dict(unet.config))
    if family is None:
        raise UnsupportedModel(f"{model_id} is a Stable Diffusion 2.x model (1024-wide cross-attention), "
                               "which Scenecast does not run", "use an SD1.5 or SDXL model")
    return family


def _vae_dtype(vae_config: dict, dtype: torch.dtype) -> torch.dtype:
    """SDXL's VAE overflows to NaN (black images) in float16: keep it in float32 unless it is the fp16 fix."""
    return torch.float32 if dtype == torch.float16 and vae_config.get("force_upcast", False) else dtype


def _fp16_fix_vae(dtype: torch.dtype) -> AutoencoderKL | None:
    snap = hub_snapshot(SDXL_FP16_FIX_VAE)
    if dtype != torch.float16 or snap is None or not any(snap.glob("*.safetensors")):
        return None
    log.info("using %s as the SDXL VAE (float16-safe)", SDXL_FP16_FIX_VAE)
    return AutoencoderKL.from_pretrained(snap, torch_dtype=dtype, use_safetensors=True, variant=_variant(snap))


def load_diffusers_folder(folder: Path, model_id: str, source: str, dtype: torch.dtype) -> BaseComponents:
    flow = flow_family_of_folder(folder)
    if flow is not None:
        return load_flow_folder(folder, model_id, source, dtype, flow)
    check_weights(folder, BASE_COMPONENTS, model_id)
    kw = dict(torch_dtype=dtype, use_safetensors=True, local_files_only=True)
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", variant=_variant(folder / "unet"), **kw)
    family = _family_of(unet, model_id)
    vae_cfg = json.loads((folder / "vae" / "config.json").read_text())
    vae = _fp16_fix_vae(dtype) if family == "sdxl" else None
    vae_id = SDXL_FP16_FIX_VAE if vae is not None else None
    if vae is None:
        kw_vae = {**kw, "torch_dtype": _vae_dtype(vae_cfg, dtype)}
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", variant=_variant(folder / "vae"), **kw_vae)
    encoders = [CLIPTextModel.from_pretrained(folder / "text_encoder", torch_dtype=dtype, use_safetensors=True,
                                              variant=_variant(folder / "text_encoder"))]
    tokenizers = [CLIPTokenizer.from_pretrained(folder / "tokenizer")]
    if (folder / "text_encoder_2").is_dir():
        encoders.append(CLIPTextModelWithProjection.from_pretrained(
            folder / "text_encoder_2", torch_dtype=dtype, use_safetensors=True,
            variant=_variant(folder / "text_encoder_2")))
        tokenizers.append(CLIPTokenizer.from_pretrained(folder / "tokenizer_2"))
    index = json.loads((folder / "model_index.json").read_text()) if (folder / "model_index.json").is_file() else {}
    sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    zeros = bool(index.get("force_zeros_for_empty_prompt", family == "sdxl"))
    return BaseComponents(
        id=model_id, family=family, source=source, unet=unet.eval(), vae=vae.eval(),
        text_encoders=[e.eval() for e in encoders], tokenizers=tokenizers, scheduler_config=sched,
        vae_decode_dtype=vae.dtype, force_zeros_for_empty_prompt=zeros, vae_id=vae_id,
    )


def load_single_file(path: Path, model_id: str, dtype: torch.dtype, configs: dict[str, Path]) -> BaseComponents:
    """An A1111/ComfyUI-style checkpoint, converted with diffusers' converters against local configs."""
    kind, family, inpainting = classify_single_file(path)
    if kind != "base":
        raise UnsupportedModel(f"{path.name} is a {kind}, not a base model", f"use it as a {kind} instead")
    if is_flow(family):
        raise refuse_flow_single_file(path, kind, family)
    cfg = configs.get(family) or config_folder(family, inpainting)
    log.info("loading single-file %s checkpoint %s with configs from %s", family, path, cfg)
    ckpt = load_file(str(path))
    kw = dict(config=str(cfg), local_files_only=True)
    unet = UNet2DConditionModel.from_single_file(ckpt, subfolder="unet", torch_dtype=dtype, **kw)
    vae_cfg = json.loads((cfg / "vae" / "config.json").read_text())
    vae = _fp16_fix_vae(dtype) if family == "sdxl" else None
    vae_id = SDXL_FP16_FIX_VAE if vae is not None else None
    if vae is None:
        vae = AutoencoderKL.from_single_file(ckpt, subfolder="vae", torch_dtype=_vae_dtype(vae_cfg, dtype), **kw)
    encoders = [create_diffusers_clip_model_from_ldm(CLIPTextModel, ckpt, subfolder="text_encoder",
                                                     torch_dtype=dtype, **kw)]
    tokenizers = [CLIPTokenizer.from_pretrained(cfg / "tokenizer")]
    if family == "sdxl":
        encoders.append(create_diffusers_clip_model_from_ldm(
            CLIPTextModelWithProjection, ckpt, subfolder="text_encoder_2", torch_dtype=dtype, **kw))
        tokenizers.append(CLIPTokenizer.from_pretrained(cfg / "tokenizer_2"))
    del ckpt
    sched = json.loads((cfg / "scheduler" / "scheduler_config.json").read_text())
    return BaseComponents(
        id=model_id, family=family, source="single_file", unet=unet.eval(), vae=vae.eval(),
        text_encoders=[e.eval() for e in encoders], tokenizers=tokenizers, scheduler_config=sched,
        vae_decode_dtype=vae.dtype, force_zeros_for_empty_prompt=family == "sdxl", vae_id=vae_id,
    )


def load_base(loc: Located, dtype: torch.dtype, configs: dict[str, Path],
              on_download: DownloadCallback | None = None) -> BaseComponents:
    if loc.source == "builtin":
        base = BASES[loc.id]()
        base.vae_decode_dtype = dtype
        return base
    if loc.source == "single_file":
        return load_single_file(loc.path, loc.id, dtype, configs)
    folder = loc.path or download(loc.id, dtype == torch.float16, on_download)
    return load_diffusers_folder(folder, loc.id, loc.source, dtype)


def load_controlnet(loc: Located, dtype: torch.dtype, configs: dict[str, Path],
                    on_download: DownloadCallback | None = None) -> ControlNetModel:
    if loc.source == "builtin":
        return CONTROLNETS[loc.id]()
    if loc.source == "single_file":
        kind, family, _ = classify_single_file(loc.path)
        if kind != "controlnet":
            raise UnsupportedModel(f"{loc.path.name} is a {kind}, not a ControlNet", "give a ControlNet checkpoint")
        if is_flow(family) or is_union_header(loc.path):
            raise refuse_flow_single_file(loc.path, kind, family)
        cfg = configs.get(family) or config_folder(family)
        return ControlNetModel.from_single_file(str(loc.path), config=str(cfg), subfolder="controlnet",
                                                torch_dtype=dtype, local_files_only=True).eval()
    folder = loc.path or download(loc.id, dtype == torch.float16, on_download)
    check_weights(folder, ("",), loc.id)
    cfg = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    flow_cls = flow_controlnet_class(cfg)
    if flow_cls is not None:
        import diffusers  # noqa: PLC0415

        return getattr(diffusers, flow_cls).from_pretrained(folder, torch_dtype=dtype, use_safetensors=True,
                                                            local_files_only=True, variant=_variant(folder)).eval()
    cls = ControlNetUnionModel if is_union_controlnet_folder(folder) else ControlNetModel
    return cls.from_pretrained(folder, torch_dtype=dtype, use_safetensors=True, local_files_only=True,
                               variant=_variant(folder)).eval()


def is_union_header(path: Path) -> bool:
    d = classify_header(read_safetensors_header(path))
    return d is not None and d.note == "ControlNet Union"


def is_union_controlnet_folder(folder: Path) -> bool:
    """A ControlNet Union (xinsir layout): its config or its weights (``task_embedding``) say so — some
    published Union repos keep ``"_class_name": "ControlNetModel"`` in their config."""
    cfg = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    if cfg.get("_class_name") == "ControlNetUnionModel" or "num_control_type" in cfg:
        return True
    from safetensors import safe_open  # noqa: PLC0415

    for weights in sorted(folder.glob("diffusion_pytorch_model*.safetensors"))[:1]:
        with safe_open(str(weights), framework="pt") as f:
            return "task_embedding" in f.keys()
    return False
