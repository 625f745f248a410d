"""Peak memory of one short denoise (2 steps) per family in each memory mode (backend/models/memory.py).

    .venv/bin/python bench/memory_modes.py [--families flux,zimage,qwen,sd15] [--modes full,fp8,...]
                                           [--size 128] [--device cuda] [--dtype bfloat16]

Each (family, mode) runs in a fresh subprocess so peaks do not mix. Denoisers with random weights:
the flow families at the **real width with reduced depth** (bench/flow_step.py's: FLUX.1 2 double +
4 single blocks of 19 + 38, Z-Image 2 layers + 2 + 2 refiners of 30, Qwen-Image 2 blocks of 60); SD1.5's
UNet and SDXL's UNet are the real architectures (SDXL is left out on the CPU by default: 10 GB in float32).
Text encoders are left out (random embeddings of the real width); the VAE is not run. The mode is
applied with ``apply_memory_plan`` exactly as the backend applies it, weights loaded on the CPU first.

What is printed per line: ``MEM <family> <mode> <peak MB> <weights MB>``.
- CPU: peak resident set size during the denoise (VmHWM, reset after the plan is applied) above the
  process's size before the model was built: the weights as held plus the activations. Offload modes
  move nothing on the CPU (onload and offload device are both the CPU): their figure is full's.
- CUDA: ``torch.cuda.max_memory_allocated`` — what the device held at most, weights plus activations.
Also prints the weights' bytes on the device/in RAM after the plan (parameters + buffers).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

MODES = ("full", "offload", "fp8", "fp8-offload", "group-offload")


def _rss_mb(field: str = "VmRSS") -> float:
    """Resident set (VmRSS) or its peak since the last reset (VmHWM) of this process, in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Start VmHWM afresh (Linux: writing 5 to clear_refs), so the peak is the denoise's, not the build's."""
    import gc

    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _unet_case(family: str, dtype: torch.dtype):  # noqa: ANN202
    from diffusers import UNet2DConditionModel

    from backend.models.configs import config_folder

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(config_folder(family)),
                                                                             subfolder="unet"))
    return unet.to(dtype).eval().requires_grad_(False)


def run_one(family: str, mode: str, size: int, device: torch.device, dtype: torch.dtype) -> dict:
    from backend.models.memory import apply_memory_plan, choose_mode

    before = _rss_mb()
    plan = choose_mode(family, 1, None, device_type=device.type, requested=mode, dtype=str(dtype).removeprefix("torch."))
    gen = torch.Generator().manual_seed(3)
    if family in ("sd15", "sdxl"):
        unet = _unet_case(family, dtype)
        from diffusers import AutoencoderKL

        vae = AutoencoderKL(block_out_channels=(8,), norm_num_groups=8, latent_channels=4)  # not run
        apply_memory_plan([unet], vae, plan, device)
        h = size // 8
        width = 768 if family == "sd15" else 2048
        kw = dict(encoder_hidden_states=torch.randn(1, 77, width, generator=gen).to(device, dtype))
        if family == "sdxl":
            kw["added_cond_kwargs"] = {"text_embeds": torch.randn(1, 1280, generator=gen).to(device, dtype),
                                       "time_ids": torch.tensor([[size, size, 0, 0, size, size]]).to(device, dtype)}
        weights = sum(p.numel() * p.element_size() for p in unet.parameters())  # after the plan
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        _reset_peak()
        with torch.inference_mode():
            x = torch.randn(1, 4, h, h, generator=gen).to(device, dtype)
            for t in (900, 500):
                x = unet(x, t, return_dict=False, **kw)[0]
    else:
        from flow_step import build

        from backend.pipelines import flow_models
        from backend.pipelines.flow_denoise import flow_denoise, make_flow_scheduler
        from backend.pipelines.flux import image_seq_len

        base, cond, _, _ = build(family, torch.device("cpu"), dtype)
        base.text_encoders = []
        apply_memory_plan([base.transformer], base.vae, plan, device)
        weights = sum(p.numel() * p.element_size() for p in base.transformer.parameters())  # after the plan
        base.exec_device = device
        if isinstance(cond.embeds, list):
            cond.embeds = [e.to(device) for e in cond.embeds]
        else:
            cond.embeds = cond.embeds.to(device)
        if cond.pooled is not None:
            cond.pooled, cond.text_ids = cond.pooled.to(device), cond.text_ids.to(device)
        h = size // 8
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        _reset_peak()
        sched = make_flow_scheduler(base.scheduler_config, 2, image_seq_len(size, size, 8), device)
        latents = torch.randn(1, 16, h, h, generator=gen).to(device)
        velocity = flow_models.velocity(base, cond, 3.5 if family == "flux" else 0.0, [], h, h)
        with torch.inference_mode():
            flow_denoise(velocity, sched, sched.timesteps, latents, lambda: False, lambda *a: None)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = _rss_mb("VmHWM") - before
    return {"family": family, "mode": mode, "peak_mb": round(peak, 1), "weights_mb": round(weights / 2**20, 1),
            "device": str(device), "dtype": str(dtype).removeprefix("torch.")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default=None, help="default: flux,zimage,qwen,sd15 (+ sdxl on CUDA)")
    ap.add_argument("--modes", default=None, help="default: all on CUDA; full,fp8,group-offload on the CPU")
    ap.add_argument("--size", type=int, default=128, help="image side in pixels (default 128; 1024 on a GPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on the CPU")
    ap.add_argument("--one", nargs=2, metavar=("FAMILY", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    if args.one:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        print(json.dumps(run_one(args.one[0], args.one[1], args.size, device, dtype)))
        return
    modes = args.modes or (",".join(MODES) if device.type == "cuda" else "full,fp8,group-offload")
    families = (args.families or ("flux,zimage,qwen,sd15,sdxl" if device.type == "cuda" else "flux,zimage,qwen,sd15"))
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {label}, {dtype}, {args.size}x{args.size}, torch {torch.__version__}")
    for family in families.split(","):
        for mode in modes.split(","):
            cmd = [sys.executable, __file__, "--one", family, mode, "--size", str(args.size), "--device", args.device,
                   "--dtype", str(dtype).removeprefix("torch.")]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"MEM {family} {mode} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"MEM {family} {mode} {r['peak_mb']} {r['weights_mb']}", flush=True)


if __name__ == "__main__":
    main()
