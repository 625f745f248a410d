"""ControlNet swap with the base model warm: SD1.5-size ControlNets loaded from .safetensors folders.

    .venv/bin/python bench/controlnet_swap.py [--repeat 3]

Two SD1.5-architecture ControlNets (361 M parameters each, random weights from fixed seeds) are saved
once as diffusers folders under $XDG_CACHE_HOME/scenecast/bench/. With ``builtin:sd15-random`` warm
in the ModelManager, the benchmark times ``manager.controlnet(other)`` — what a job whose ControlNet
set changed pays — and checks the base model is the same object afterwards (never reloaded).
Baseline, same run: building the warm base itself, which is what a pipeline-level reload (diffusers'
``from_pretrained`` on a ControlNet change) would pay again. The cache budget is set so that only one
ControlNet fits beside the base, so every swap is a real load from disk, not a cache hit.
Prints ``RATIO controlnet_swap_vs_1s <seconds/1 s>`` (target < 1) and ``RATIO controlnet_swap_vs_base``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.models import ModelManager  # noqa: E402
from backend.models.builtins import build_sd15_random_controlnet  # noqa: E402
from backend.models.components import module_bytes  # noqa: E402


def controlnet_folders() -> list[Path]:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scenecast" / "bench"
    folders = [root / f"sd15-random-controlnet-{i}" for i in range(2)]
    for i, folder in enumerate(folders):
        if (folder / "diffusion_pytorch_model.safetensors").exists():
            continue
        net = build_sd15_random_controlnet()
        with torch.no_grad():
            for p in net.parameters():  # a second, different ControlNet of the same shape
                p.add_(torch.randn_like(p) * 1e-3 * i)
        tmp = folder.with_name(folder.name + ".tmp")
        net.save_pretrained(tmp)
        tmp.rename(folder)
    return folders


def touch(net: torch.nn.Module) -> None:
    """Read one value per 4 KiB page of every weight: safetensors maps files lazily, so without this
    the reading would hide in the next job's first denoising step instead of being timed here."""
    with torch.no_grad():
        for p in net.parameters():
            p.detach().reshape(-1)[::1024].sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    folders = controlnet_folders()
    t0 = time.perf_counter()
    probe = ModelManager(device="cpu", memory_budget_gb=1000)
    base = probe.base("builtin:sd15-random")
    base_seconds = time.perf_counter() - t0
    one_net = module_bytes(probe.controlnet(str(folders[0])))
    # Room for the base and one ControlNet: each swap evicts the other ControlNet and loads from disk.
    manager = probe
    manager.cache.budget_bytes = base.nbytes() + int(one_net * 1.5)
    swaps = []
    for i in range(args.repeat * 2):
        folder = folders[(i + 1) % 2]
        manager.base("builtin:sd15-random")  # a job touches its base first: the old ControlNet is the LRU entry
        t0 = time.perf_counter()
        touch(manager.controlnet(str(folder)))
        swaps.append(time.perf_counter() - t0)
        assert manager.base("builtin:sd15-random") is base, "the base model was reloaded"
    swap = statistics.median(swaps)
    print(f"controlnet_swap: SD1.5 ControlNet ({one_net / 1e9:.2f} GB fp32) from .safetensors, base warm, cpu")
    print(f"  base build (baseline)                {base_seconds:7.2f} s")
    print(f"  swap (load + every weight page read) {swap:7.3f} s (median of {len(swaps)}: {', '.join(f'{s:.3f}' for s in swaps)})")
    print(f"RATIO controlnet_swap_vs_1s {swap:.3f}")
    print(f"RATIO controlnet_swap_vs_base {swap / base_seconds:.3f}")


if __name__ == "__main__":
    main()
