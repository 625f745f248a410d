"""Which device and dtype the backend computes on.

Policy: an explicit choice (argument, else ``SCENECAST_DEVICE``) wins, and asking for a device that is
not there is an error — never a silent fall back to the CPU, which would turn a 3 s job into a 10 min
one without telling anyone. ``auto`` picks cuda, then mps, then cpu. Default dtypes: CUDA float16,
MPS float16, CPU float32; bfloat16 may be asked for explicitly anywhere it works.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from .errors import DeviceUnavailable

log = logging.getLogger("scenecast.models")

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class DevicePlan:
    device: torch.device
    dtype: torch.dtype
    label: str  # what health and the log show, e.g. "cuda:0 (NVIDIA H100 80GB HBM3)"

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def choose_device(device: str | None = None, dtype: str | None = None) -> DevicePlan:
    """Resolve the device and dtype; raise :class:`DeviceUnavailable` rather than fall back."""
    requested = (device or os.environ.get("SCENECAST_DEVICE") or "auto").strip().lower()
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"device {requested!r} was asked for but this torch ({torch.__version__}) sees no CUDA GPU",
                "install a CUDA build of torch and check `nvidia-smi`, or ask for SCENECAST_DEVICE=cpu explicitly",
            )
        dev = torch.device(requested if ":" in requested else "cuda:0")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailable(f"{dev} does not exist: {torch.cuda.device_count()} CUDA device(s) found",
                                    "pick an index below that, e.g. SCENECAST_DEVICE=cuda:0")
        label = f"{dev} ({torch.cuda.get_device_name(dev)})"
        default_dtype = "float16"
    elif requested == "mps":
        if not _mps_available():
            raise DeviceUnavailable("device 'mps' was asked for but Apple Metal is not available here",
                                    "run on an Apple-silicon Mac with a recent torch, or ask for SCENECAST_DEVICE=cpu")
        dev, label, default_dtype = torch.device("mps"), "mps (Apple Metal)", "float16"
    elif requested == "cpu":
        dev, label, default_dtype = torch.device("cpu"), "cpu", "float32"
    else:
        raise DeviceUnavailable(f"unknown device {requested!r}", "use auto, cpu, cuda, cuda:N or mps")

    name = (dtype or os.environ.get("SCENECAST_DTYPE") or default_dtype).strip().lower()
    if name not in DTYPES:
        raise DeviceUnavailable(f"unknown dtype {name!r}", "use float32, float16 or bfloat16")
    torch_dtype = DTYPES[name]
    if dev.type == "cpu" and torch_dtype == torch.float16:
        raise DeviceUnavailable("float16 on the CPU is very slow and poorly supported",
                                "use float32 (default) or bfloat16 on the CPU")
    if dev.type == "cuda" and torch_dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise DeviceUnavailable(f"{label} does not support bfloat16", "use float16 on this GPU")
    plan = DevicePlan(dev, torch_dtype, label)
    log.info("computing on %s in %s", plan.label, plan.dtype_name)
    return plan
