"""One denoising step of each flow-matching family, ours against diffusers' stock pipeline, same run.

    .venv/bin/python bench/flow_step.py [--families flux,zimage,qwen] [--size 512] [--steps 4]
                                        [--device cuda] [--dtype bfloat16]

Transformers at the **real width with reduced depth** (random weights, fixed seeds, both sides share
the modules): FLUX.1 3072 wide (24 x 128 heads, T5 width 4096) with 2 double + 4 single blocks (real: 19
+ 38); Z-Image 3840 wide (30 heads, caption width 2560) with 2 layers + 2 + 2 refiners (real: 30); Qwen-Image
3072 wide (24 x 128, text width 3584) with 2 blocks (real: 60). Text conditioning is random embeddings of
the real width and a 128/64-token length, handed to both sides (so text encoders are left out); the VAE is
never run (latents out). Ours: ``make_flow_scheduler`` + the family's velocity + ``flow_denoise``, the
code ``run_job`` runs per step. Stock: ``FluxPipeline`` / ``ZImagePipeline`` / ``QwenImagePipeline`` with
``prompt_embeds``. A step's time is the gap between consecutive step callbacks (the first step's warm-up
left out), median over the steps. Prints ``RATIO flow_step_<family> <ours/stock>`` (target <= 1.0).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(family: str, device: torch.device, dtype: torch.dtype):  # noqa: ANN201
    """(base components with the real-width transformer, conditioning for ours, stock pipeline, stock kwargs)."""
    import diffusers

    from backend.models import builtins
    from backend.pipelines.flow_prompt import FlowConditioning

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    if family == "flux":
        base = builtins.BASES["builtin:tiny-flux"]()
        base.transformer = diffusers.FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=2, num_single_layers=4, attention_head_dim=128,
            num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
            axes_dims_rope=(16, 56, 56))
        embeds = torch.randn(1, 128, 4096, generator=gen)
        pooled = torch.randn(1, 768, generator=gen)
        cond = FlowConditioning(embeds, pooled, torch.zeros(128, 3), False)
        pipe_cls, kw = diffusers.FluxPipeline, dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled, guidance_scale=3.5)
        parts = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
    elif family == "zimage":
        base = builtins.BASES["builtin:tiny-zimage"]()
        base.transformer = diffusers.ZImageTransformer2DModel(
            all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=3840, n_layers=2, n_refiner_layers=2,
            n_heads=30, n_kv_heads=30, norm_eps=1e-5, qk_norm=True, cap_feat_dim=2560, rope_theta=256.0,
            t_scale=1000.0, axes_dims=[32, 48, 48], axes_lens=[1024, 512, 512])
        embeds = [torch.randn(64, 2560, generator=gen)]
        cond = FlowConditioning(embeds, None, None, False)
        pipe_cls, kw = diffusers.ZImagePipeline, dict(prompt_embeds=embeds, guidance_scale=0.0)
        parts = ("text_encoder", "tokenizer")
    else:
        base = builtins.BASES["builtin:tiny-qwen"]()
        base.transformer = diffusers.QwenImageTransformer2DModel(
            patch_size=2, in_channels=64, out_channels=16, num_layers=2, attention_head_dim=128,
            num_attention_heads=24, joint_attention_dim=3584, guidance_embeds=False, axes_dims_rope=(16, 56, 56))
        embeds = torch.randn(1, 128, 3584, generator=gen)
        cond = FlowConditioning(embeds, None, None, False)
        pipe_cls = diffusers.QwenImagePipeline
        kw = dict(prompt_embeds=embeds, prompt_embeds_mask=torch.ones(1, 128, dtype=torch.long), true_cfg_scale=1.0)
        parts = ("text_encoder", "tokenizer")
    base.transformer = base.transformer.to(device, dtype).eval().requires_grad_(False)
    base.vae = base.vae.to(device, dtype)
    if isinstance(cond.embeds, list):
        cond.embeds = [e.to(device, dtype) for e in cond.embeds]
    else:
        cond.embeds = cond.embeds.to(device, dtype)
    if cond.pooled is not None:
        cond.pooled, cond.text_ids = cond.pooled.to(device, dtype), cond.text_ids.to(device, dtype)
    for k in ("prompt_embeds", "pooled_prompt_embeds"):
        if k in kw:
            kw[k] = [e.to(device, dtype) for e in kw[k]] if isinstance(kw[k], list) else kw[k].to(device, dtype)
    if "prompt_embeds_mask" in kw:
        kw["prompt_embeds_mask"] = kw["prompt_embeds_mask"].to(device)
    components = dict(transformer=base.transformer, vae=base.vae,
                      scheduler=diffusers.FlowMatchEulerDiscreteScheduler.from_config(base.scheduler_config))
    components.update({p: (base.tokenizers if "tokenizer" in p else base.text_encoders)[1 if p.endswith("_2") else 0]
                       for p in parts})
    pipe = pipe_cls(**components)
    pipe.set_progress_bar_config(disable=True)
    return base, cond, pipe, kw


def time_ours(family: str, base, cond, size: int, steps: int, device: torch.device) -> list[float]:  # noqa: ANN001
    from backend.pipelines import flow_models
    from backend.pipelines.flow_denoise import flow_denoise, make_flow_scheduler
    from backend.pipelines.flux import image_seq_len

    h = w = size // 8
    sched = make_flow_scheduler(base.scheduler_config, steps, image_seq_len(size, size, 8), device)
    latents = torch.randn(1, 16, h, w, generator=torch.Generator().manual_seed(2)).to(device)
    velocity = flow_models.velocity(base, cond, 3.5 if family == "flux" else 0.0, [], h, w)
    stamps: list[float] = []

    def on_step(step: int, total: int, current: torch.Tensor, x0: torch.Tensor | None) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    with torch.inference_mode():
        flow_denoise(velocity, sched, sched.timesteps, latents, lambda: False, on_step)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def time_stock(pipe, kw: dict, size: int, steps: int, device: torch.device) -> list[float]:  # noqa: ANN001
    stamps: list[float] = []

    def on_step_end(p, i, t, tensors):  # noqa: ANN001, ANN202
        _sync(device)
        stamps.append(time.perf_counter())
        return tensors

    with torch.inference_mode():
        pipe(height=size, width=size, num_inference_steps=steps, generator=torch.Generator().manual_seed(2),
             output_type="latent", callback_on_step_end=on_step_end, **kw)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default="flux,zimage,qwen")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: bf16 on CUDA, fp32 on CPU)")
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), {dtype}, "
          f"{args.size}x{args.size}, {args.steps} steps; real width, reduced depth (see the docstring)")
    for family in args.families.split(","):
        base, cond, pipe, kw = build(family, device, dtype)
        stock_warm = time_stock(pipe, kw, args.size, 2, device)  # warm-up (kernels, allocator)
        del stock_warm
        ours = time_ours(family, base, cond, args.size, args.steps, device)
        stock = time_stock(pipe, kw, args.size, args.steps, device)
        o, s = statistics.median(ours), statistics.median(stock)
        print(f"{family}: step ours {o * 1000:.1f} ms, stock {s * 1000:.1f} ms")
        print(f"RATIO flow_step_{family} {o / s:.3f}")
        del base, cond, pipe
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
