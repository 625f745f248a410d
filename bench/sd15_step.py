"""One CFG denoising step of the real SD1.5 architecture + one ControlNet at 512², ours against stock.

    .venv/bin/python bench/sd15_step.py [--steps 3] [--variants fp32,channels_last,...]

The models are ``builtin:sd15-random``: SD1.5's real shapes (UNet 860M, ControlNet 361M, CLIP-L,
the 8x VAE) with random weights built in code from fixed seeds, so both sides get identical weights.
Baseline: diffusers' stock ``StableDiffusionControlNetPipeline`` in float32, assembled from those
components. Measured: our ``run_job`` on the same model, same prompt, seed, scheduler and step count, under each variant of
the ModelManager's settings. A step's time is the gap between consecutive step callbacks (so text
encoding, the VAE and the first step's warm-up are left out); each pipeline runs in its own process,
one after another, so they never share the cores. Prints ``RATIO sd15_step_<variant> <ours/stock>``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = {  # name -> ModelManager keyword arguments
    "fp32": {},
    "channels_last": {"channels_last": True},
    "bf16": {"dtype": "bfloat16"},
    "compile": {"compile": True},
}
PROMPT = "a stone house on a hill, overcast light"


def control_image(size: int = 512):  # noqa: ANN201 - numpy array
    import numpy as np

    y, x = np.mgrid[0:size, 0:size]
    depth = (255 * (1.0 - (x + y) / (2 * size - 2))).astype(np.uint8)
    return np.repeat(depth[:, :, None], 3, axis=2)


def run_stock(steps: int) -> list[float]:
    import torch
    from diffusers import EulerAncestralDiscreteScheduler, StableDiffusionControlNetPipeline
    from PIL import Image

    from backend.models.builtins import build_sd15_random, build_sd15_random_controlnet

    base = build_sd15_random()
    pipe = StableDiffusionControlNetPipeline(
        vae=base.vae, text_encoder=base.text_encoders[0], tokenizer=base.tokenizers[0], unet=base.unet,
        controlnet=build_sd15_random_controlnet(), scheduler=EulerAncestralDiscreteScheduler.from_config(base.scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    stamps: list[float] = []

    def on_step(_pipe, _i, _t, kwargs):  # noqa: ANN001, ANN202
        stamps.append(time.perf_counter())
        return kwargs

    pipe(PROMPT, image=Image.fromarray(control_image()), num_inference_steps=steps, guidance_scale=7.5,
         generator=torch.Generator().manual_seed(1), callback_on_step_end=on_step, output_type="np")
    return [b - a for a, b in zip(stamps, stamps[1:])]


def run_ours(steps: int, settings: dict) -> list[float]:
    from backend.models import ModelManager
    from backend.pipelines import run_job
    from backend.spec import JobSpec

    stamps: list[float] = []

    class Progress:
        def stage(self, *a): pass
        def step(self, *a): stamps.append(time.perf_counter())
        def preview(self, *a): pass
        def download(self, *a): pass
        def cancelled(self) -> bool: return False

    settings = dict(settings)
    manager = ModelManager(device="cpu", dtype=settings.pop("dtype", "float32"), **settings)
    spec = JobSpec.model_validate({
        "model": "builtin:sd15-random", "prompt": PROMPT, "seed": 1, "steps": steps, "guidance": 7.5, "scheduler": "euler_a",
        "width": 512, "height": 512,
        "stages": [{"type": "generate", "controlnets": [{"image": "depth", "type": "depth", "model": "builtin:sd15-random-controlnet"}]}]})
    run_job(spec, {"depth": control_image()}, manager, Progress())
    return [b - a for a, b in zip(stamps, stamps[1:])]


def child(args: argparse.Namespace) -> None:
    if args.child == "stock":
        gaps = run_stock(args.steps)
    else:
        gaps = run_ours(args.steps, VARIANTS[args.child])
    print("RESULT " + json.dumps(gaps), flush=True)


def measure(name: str, steps: int) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", name, "--steps", str(steps)],
                         capture_output=True, text=True, env=os.environ)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    gaps = json.loads(lines[-1][7:])
    value = statistics.median(gaps)
    print(f"  {name:>14}: {value:7.2f} s/step  (steps: {', '.join(f'{g:.2f}' for g in gaps)})", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="steps per run; the first step is not timed")
    parser.add_argument("--variants", default="fp32,channels_last", help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    import torch

    print(f"sd15_step: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, 512x512, CFG 7.5, 1 ControlNet, euler_a", flush=True)
    stock = measure("stock", args.steps)
    for name in args.variants.split(","):
        ours = measure(name, args.steps)
        print(f"RATIO sd15_step_{name} {ours / stock:.3f}", flush=True)


if __name__ == "__main__":
    main()
