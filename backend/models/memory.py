"""Memory modes: how a model is held so that it runs on the card at hand (docs/models.md, "Memory modes").

``choose_mode`` is pure: from the family, the model's bytes at 16-bit (``sizes.py`` reads them from the
safetensors headers; ``PARAMS`` gives them for the reference models before download), its largest
component and the free device memory it picks the first that fits, in this order (full precision
before float8, whole components before streamed blocks):

- ``full``: every weight on the device in the compute dtype;
- ``offload``: weights in CPU RAM, each component (text encoders, denoiser, VAE) moved to the device for
  its forward and back when the next one runs (accelerate's model CPU offload hooks) — the device holds
  the largest one; costs a transfer of each component per job, not per step;
- ``fp8``: the denoiser and text encoders stored in float8 (e4m3), each layer upcast to the compute dtype
  just for its forward (diffusers' layerwise casting) — half the bytes, a little precision;
- ``fp8-offload``: both: the device holds the largest component in float8;
- ``group-offload``: weights in CPU RAM, streamed to the device one block at a time (diffusers' group
  offloading) — the device holds a block and the activations; slowest, fits anything.

The compute dtype is bfloat16 for the flow families where the GPU supports it (FLUX's and T5's
activations overflow float16) and float16 for SD1.5/SDXL (their VAE decodes in float32, see
``loading.py``). On the CPU everything stays in RAM in float32: there is nothing to offload to.
VAE tiling is switched on whenever the mode is not ``full``; AutoencoderKL only tiles images larger
than its tile, so small images decode as before.

``apply_memory_plan`` applies a plan to loaded components, with diffusers' and accelerate's own hooks
(we have no diffusers pipeline object, so the hooks go on our modules directly).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger("scenecast.models")

MODES = ("full", "offload", "fp8", "fp8-offload", "group-offload")  # in order of preference
REQUESTABLE = ("auto", *MODES)
GB = 1 << 30

# Parameters of the reference models, counted from their real configs built on the meta device
# (bench/memory_modes.py --count prints them; tests/backend/test_memory_modes.py checks the transformer
# counts). Per component: the denoiser, the text encoders, the VAE.
PARAMS: dict[str, dict[str, int]] = {
    "sd15": {"unet": 859_520_964, "text_encoder": 123_060_480, "vae": 83_653_863},
    "sdxl": {"unet": 2_567_463_684, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840,
             "vae": 83_653_863},
    "flux": {"transformer": 11_901_408_320, "text_encoder": 123_060_480, "text_encoder_2": 4_762_310_656,
             "vae": 83_819_683},
    "zimage": {"transformer": 6_154_908_736, "text_encoder": 4_022_468_096, "vae": 83_819_683},
    "qwen": {"transformer": 20_430_401_088, "text_encoder": 8_292_166_656, "vae": 126_892_531},
}
PARAMS["flux-schnell"] = PARAMS["flux"]
# Bytes of the denoiser and text encoders in fp8 mode, counted the same way with the layerwise-casting
# hooks applied on the meta device: what stays 16-bit (norms and the AdaLN modulation linears diffusers
# skips, embeddings, T5's ``wo``) makes FLUX's transformer 15.1 GB, not half of 23.8.
FP8_BYTES: dict[str, dict[str, int]] = {
    "sd15": {"unet": 859_721_284, "text_encoder": 161_103_360},
    "sdxl": {"unet": 2_568_051_844, "text_encoder": 161_103_360, "text_encoder_2": 758_167_040},
    "flux": {"transformer": 15_149_072_512, "text_encoder": 161_103_360, "text_encoder_2": 5_900_740_608},
    "zimage": {"transformer": 6_165_809_728, "text_encoder": 4_411_620_352},
    "qwen": {"transformer": 20_449_512_576, "text_encoder": 8_838_956_800},
}
FP8_BYTES["flux-schnell"] = FP8_BYTES["flux"]

# Working memory besides the weights (activations, attention, the VAE decode) at the family's native
# size, in bytes: estimates, not measured here (docs/models.md says so).
WORKSPACE: dict[str, int] = {"sd15": int(1.0 * GB), "sdxl": int(2.0 * GB), "flux": int(3.0 * GB),
                             "flux-schnell": int(3.0 * GB), "zimage": int(2.5 * GB), "qwen": int(3.5 * GB)}
_FLOW = {"flux", "flux-schnell", "zimage", "qwen"}
# group offloading keeps about one transformer block (or UNet down/up block) and its neighbour's prefetch
GROUP_RESIDENT = int(1.5 * GB)


@dataclass(frozen=True)
class MemoryPlan:
    mode: str  # one of MODES
    dtype: str  # compute dtype: "bfloat16" | "float16" | "float32"
    storage: str  # weight storage of the denoiser and text encoders: the compute dtype or "float8_e4m3fn"
    offload: str  # "none" | "model" | "group"
    vae_tiling: bool
    device_bytes: int  # what the device is expected to hold for this model (weights + workspace)
    reason: str  # one line for the log, health and the record

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def default_dtype(family: str, device_type: str, bf16_supported: bool) -> str:
    """The compute dtype of ``family`` on a device of ``device_type`` (cuda, mps, cpu)."""
    if device_type == "cpu":
        return "float32"
    if family in _FLOW and bf16_supported:
        return "bfloat16"
    return "float16"


def model_bytes_16bit(family: str) -> tuple[int, int]:
    """(all components, largest component) in bytes at 2 bytes a parameter, for the reference model."""
    counts = PARAMS[family]
    return 2 * sum(counts.values()), 2 * max(counts.values())


def fp8_ratios(family: str) -> tuple[float, float]:
    """(whole model, largest component): bytes in fp8 mode over bytes at 16-bit, for the reference model
    (the VAE stays 16-bit). A family's other models are assumed to keep the same proportions."""
    counts, fp8 = PARAMS.get(family), FP8_BYTES.get(family)
    if counts is None or fp8 is None:
        return 0.5, 0.5
    vae = 2 * sum(v for k, v in counts.items() if k == "vae")
    largest = max(fp8, key=lambda k: counts[k])
    return (sum(fp8.values()) + vae) / (2 * sum(counts.values())), fp8[largest] / (2 * counts[largest])


def needed_bytes(mode: str, family: str, model_bytes: int, largest_bytes: int) -> int:
    """Device bytes ``mode`` needs for a model of ``model_bytes`` (16-bit) whose largest component takes
    ``largest_bytes``: the resident weights plus the family's workspace. float8 stores what the hooks
    cast (``FP8_BYTES``: FLUX keeps 36% of its bytes 16-bit, the others about 2-5%)."""
    work = WORKSPACE.get(family, 2 * GB)
    whole, part = fp8_ratios(family)
    resident = {"full": model_bytes, "fp8": int(model_bytes * whole), "offload": largest_bytes,
                "fp8-offload": int(largest_bytes * part), "group-offload": GROUP_RESIDENT}[mode]
    return resident + work


def choose_mode(family: str, model_bytes: int, free_bytes: int | None, *, largest_bytes: int | None = None,
                device_type: str = "cuda", bf16_supported: bool = True, requested: str = "auto",
                dtype: str | None = None) -> MemoryPlan:
    """The memory plan for ``family`` with ``model_bytes`` of weights at 16-bit and ``free_bytes`` of free
    device memory (None: unknown — treated as enough). ``requested`` (a REQUESTABLE) forces a mode;
    ``dtype`` forces the compute dtype. On the CPU the plan is always ``full``: RAM is where the weights
    are anyway. Raises ValueError for an unknown ``requested``."""
    if requested not in REQUESTABLE:
        raise ValueError(f"unknown memory mode {requested!r}: use one of {', '.join(REQUESTABLE)}")
    compute = dtype or default_dtype(family, device_type, bf16_supported)
    largest = largest_bytes if largest_bytes is not None else model_bytes
    if device_type == "cpu":
        if requested not in ("auto", "full"):
            mode, why = requested, f"{requested} as asked (on the CPU nothing is saved by it)"
        else:
            mode, why = "full", "CPU: the weights stay in RAM, nothing to offload to"
    elif requested != "auto":
        mode, why = requested, f"{requested} as asked"
    elif free_bytes is None:
        mode, why = "full", "free memory unknown: full"
    else:
        mode = next((m for m in MODES[:-1] if needed_bytes(m, family, model_bytes, largest) <= free_bytes),
                    "group-offload")
        why = (f"auto: {mode} needs {needed_bytes(mode, family, model_bytes, largest) / GB:.1f} GiB of "
               f"{free_bytes / GB:.1f} GiB free")
    return MemoryPlan(mode=mode, dtype=compute, storage="float8_e4m3fn" if mode.startswith("fp8") else compute,
                      offload={"offload": "model", "fp8-offload": "model", "group-offload": "group"}.get(mode, "none"),
                      vae_tiling=mode != "full", device_bytes=needed_bytes(mode, family, model_bytes, largest),
                      reason=why)


# -- applying a plan to loaded modules (torch from here on) ------------------------------------------------

def _layerwise_cast(module: Any, compute: Any) -> None:
    import torch  # noqa: PLC0415
    from diffusers.hooks import apply_layerwise_casting  # noqa: PLC0415
    from diffusers.models.modeling_utils import ModelMixin  # noqa: PLC0415

    if isinstance(module, ModelMixin):  # respects the model's own skip list (norms, embeddings)
        module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute)
    else:  # transformers text encoders: norms and embeddings stay, and T5's ``wo`` (T5 casts its input to
        # that layer's weight dtype, which would be float8 here; transformers keeps it in float32 itself)
        apply_layerwise_casting(module, storage_dtype=torch.float8_e4m3fn, compute_dtype=compute,
                                skip_modules_pattern=("pos_embed", "patch_embed", "norm", "embed", "shared",
                                                      r"(^|\.)wo$"))


def _group_offload(module: Any, device: Any) -> None:
    import torch  # noqa: PLC0415
    from diffusers.hooks import apply_group_offloading  # noqa: PLC0415

    apply_group_offloading(module, onload_device=device, offload_device=torch.device("cpu"),
                           offload_type="block_level", num_blocks_per_group=1,
                           use_stream=device.type == "cuda")


def apply_memory_plan(components: list[Any], vae: Any, plan: MemoryPlan, device: Any) -> list[Any]:
    """Apply ``plan`` to ``components`` (in the order a job uses them: text encoders, the denoiser) and
    ``vae``, all loaded on the CPU in the compute dtype. Returns the accelerate hooks of model offload (kept
    with the model so they live as long as it does); modules end on the device, or on the CPU under hooks."""
    import torch  # noqa: PLC0415

    compute = getattr(torch, plan.dtype)
    if plan.storage == "float8_e4m3fn":
        for m in components:
            if not getattr(m, "is_quantized", False):  # GGUF weights are already smaller than float8
                _layerwise_cast(m, compute)
    if plan.vae_tiling and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
    if plan.offload == "none":
        for m in [*components, vae]:
            m.to(device)
        return []
    if plan.offload == "group":
        for m in components:
            _group_offload(m, device)
        vae.to(device)  # small; its decode is the one place tiling already bounds
        return []
    from accelerate import cpu_offload_with_hook  # noqa: PLC0415

    hooks: list[Any] = []
    previous = None
    for m in [*components, vae]:
        _, previous = cpu_offload_with_hook(m, device, prev_module_hook=previous)
        hooks.append(previous)
    return hooks
