"""Which PyTorch build suits this machine, and where pip gets it — decided before an install starts.

- NVIDIA (``nvidia-smi`` answers): the newest CUDA build the driver supports, from PyTorch's index.
- AMD on Linux (``rocminfo`` or ``hipconfig`` answers): the ROCm build, from PyTorch's index.
- Apple silicon (macOS arm64): PyPI's default wheel, which has the MPS backend.
- Anything else: the CPU build (on Linux, PyTorch's CPU index: PyPI's default there pulls ~3 GB of
  CUDA libraries a CPU cannot use).

The parsers take the tools' text, so they are tested on real output; :func:`detect` runs the tools.
Standard library only.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from dataclasses import dataclass

PYTORCH_INDEX = "https://download.pytorch.org/whl"
#: CUDA builds PyTorch publishes for the pinned torch, newest first, as (tag, CUDA version).
CUDA_BUILDS = (("cu130", (13, 0)), ("cu128", (12, 8)), ("cu126", (12, 6)))
ROCM_BUILD = ("rocm6.4", (6, 4))


@dataclass(frozen=True)
class TorchBuild:
    name: str  # cu128 | rocm6.4 | mps | cpu
    label: str  # for the user: what was found and what will be installed
    index_url: str | None  # pip --index-url for torch; None: PyPI's default
    note: str = ""  # a warning to show (e.g. a driver too old for any CUDA build)

    def describe(self) -> str:
        where = self.index_url or "PyPI"
        return f"PyTorch {self.name} build — {self.label}; from {where}" + (f". {self.note}" if self.note else "")


def parse_nvidia_smi(text: str) -> tuple[str, tuple[int, int]] | None:
    """(GPU names, the driver's CUDA version) from plain ``nvidia-smi`` output; None without a GPU."""
    cuda = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", text)
    if not cuda:
        return None
    names = re.findall(r"^\|\s+\d+\s+(.+?)\s+(?:On|Off)\s+\|", text, re.MULTILINE)  # GPU rows only
    gpus = ", ".join(n.strip() for n in names) or "NVIDIA GPU"
    return gpus, (int(cuda.group(1)), int(cuda.group(2)))


def cuda_build(driver_cuda: tuple[int, int], gpus: str) -> TorchBuild:
    for tag, version in CUDA_BUILDS:
        if driver_cuda >= version:
            return TorchBuild(tag, f"{gpus} (driver supports CUDA {driver_cuda[0]}.{driver_cuda[1]})",
                              f"{PYTORCH_INDEX}/{tag}")
    oldest = CUDA_BUILDS[-1][1]
    return TorchBuild("cpu", f"{gpus}, but its driver supports CUDA {driver_cuda[0]}.{driver_cuda[1]} only",
                      f"{PYTORCH_INDEX}/cpu",
                      note=f"Update the NVIDIA driver (CUDA {oldest[0]}.{oldest[1]} or newer) and install again"
                           " to use the GPU; the CPU build takes hours per image")


def parse_rocm(text: str) -> str | None:
    """GPU names (``gfx...`` agents) from ``rocminfo`` output, else "AMD GPU" for ``hipconfig`` output."""
    agents = re.findall(r"Name:\s+(gfx\w+)", text)
    if agents:
        return ", ".join(sorted(set(agents)))
    return "AMD GPU" if re.search(r"\d+\.\d+", text) else None


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def detect(system: str | None = None, machine: str | None = None) -> TorchBuild:
    """The build for this machine (runs ``nvidia-smi``/``rocminfo``/``hipconfig`` when present)."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    smi = _run(["nvidia-smi"])
    found = parse_nvidia_smi(smi) if smi else None
    if found is not None:
        return cuda_build(found[1], found[0])
    if system == "Linux":
        rocm = _run(["rocminfo"]) or _run(["hipconfig", "--version"])
        gpus = parse_rocm(rocm) if rocm else None
        if gpus:
            tag = ROCM_BUILD[0]
            return TorchBuild(tag, f"{gpus} (ROCm)", f"{PYTORCH_INDEX}/{tag}")
    if system == "Darwin" and machine in ("arm64", "aarch64"):
        return TorchBuild("mps", "Apple silicon (Metal, MPS)", None)
    label = "no NVIDIA, AMD or Apple GPU found"
    return TorchBuild("cpu", label, f"{PYTORCH_INDEX}/cpu" if system in ("Linux", "Windows") else None,
                      note="the CPU build works but a real model takes minutes to hours per image")
