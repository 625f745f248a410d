"""Memory modes (backend/models/memory.py): the pure choice by family, model size and free memory, and each
mode applied to the tiny builtins on the CPU (diffusers' layerwise casting and group offloading and
accelerate's model offload hooks all run on the CPU; what they move is only measurable on a GPU)."""

from __future__ import annotations

import copy
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny import RecordingProgress
from backend.models import ModelManager
from backend.models.memory import (GB, MODES, PARAMS, REQUESTABLE, WORKSPACE, choose_mode, default_dtype,
                                   model_bytes_16bit, needed_bytes)
from backend.pipelines import run_job
from backend.spec import JobSpec

FAMILIES = ("sd15", "sdxl", "flux", "flux-schnell", "zimage", "qwen")
FREE = [None, 0, 512 << 20, *[int(g * GB) for g in (2, 4, 6, 7.25, 8, 11.25, 12, 15.25, 16, 20, 23.25, 24, 40, 80)]]


@pytest.mark.parametrize("family", FAMILIES)
def test_auto_picks_the_first_mode_that_fits_else_group_offload(family: str) -> None:
    total, largest = model_bytes_16bit(family)
    for free in FREE:
        plan = choose_mode(family, total, free, largest_bytes=largest)
        assert plan.mode in MODES and plan.device_bytes == needed_bytes(plan.mode, family, total, largest)
        if free is None:
            assert plan.mode == "full"
            continue
        preferred = MODES[:MODES.index(plan.mode)]
        assert all(needed_bytes(m, family, total, largest) > free for m in preferred)  # nothing better fits
        assert plan.mode == "group-offload" or plan.device_bytes <= free
        assert plan.storage == ("float8_e4m3fn" if plan.mode.startswith("fp8") else plan.dtype)
        assert plan.offload == {"offload": "model", "fp8-offload": "model", "group-offload": "group"}.get(plan.mode, "none")
        assert plan.vae_tiling == (plan.mode != "full")


@pytest.mark.parametrize("family", FAMILIES)
def test_more_free_memory_never_picks_a_less_preferred_mode(family: str) -> None:
    total, largest = model_bytes_16bit(family)
    ranks = [MODES.index(choose_mode(family, total, f, largest_bytes=largest).mode) for f in FREE[1:]]
    assert ranks == sorted(ranks, reverse=True)


def test_every_requested_mode_on_every_device_and_dtype_rule() -> None:
    for family, requested, device, bf16 in itertools.product(FAMILIES, REQUESTABLE, ("cuda", "mps", "cpu"),
                                                             (True, False)):
        plan = choose_mode(family, 10 * GB, 4 * GB, device_type=device, bf16_supported=bf16, requested=requested)
        flow = family not in ("sd15", "sdxl")
        want_dtype = "float32" if device == "cpu" else "bfloat16" if flow and bf16 else "float16"
        assert plan.dtype == want_dtype == default_dtype(family, device, bf16)
        if requested != "auto":
            assert plan.mode == requested  # an override always wins, on the CPU too (said in the reason)
        elif device == "cpu":
            assert plan.mode == "full" and "CPU" in plan.reason  # no offload on the CPU
        else:
            assert plan.mode == "group-offload"  # 10 GB of weights, 4 GB free
    assert choose_mode("flux", GB, GB, dtype="float16").dtype == "float16"  # --dtype wins


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown memory mode"):
        choose_mode("flux", GB, GB, requested="fast")
    with pytest.raises(ValueError, match="unknown memory mode"):
        ModelManager(device="cpu", memory_mode="fast")


def test_the_docs_table_choices() -> None:
    """The table in docs/models.md ("Memory modes"): card size minus 0.75 GiB taken by the desktop and the
    CUDA context."""
    want = {"sd15": ["full"] * 4, "sdxl": ["offload", "full", "full", "full"],
            "flux": ["group-offload", "group-offload", "group-offload", "fp8"],
            "zimage": ["group-offload", "fp8-offload", "offload", "full"],
            "qwen": ["group-offload", "group-offload", "group-offload", "fp8-offload"]}
    for family, modes in want.items():
        total, largest = model_bytes_16bit(family)
        got = [choose_mode(family, total, int((card - 0.75) * GB), largest_bytes=largest).mode for card in (8, 12, 16, 24)]
        assert got == modes, family
    assert set(WORKSPACE) >= set(PARAMS)


def test_parameter_counts_are_the_real_architectures() -> None:
    """PARAMS (memory.py) against the reference configs built on the meta device (bench/arch_counts.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import arch_counts  # noqa: PLC0415

    for family, part in [("flux", "transformer"), ("zimage", "transformer"), ("qwen", "transformer"),
                         ("flux", "text_encoder_2"), ("sdxl", "unet"), ("sd15", "vae")]:
        assert arch_counts.count(arch_counts.BUILDERS[family][part]) == PARAMS[family][part], (family, part)
    from backend.models.memory import FP8_BYTES, _layerwise_cast  # noqa: PLC0415

    with torch.device("meta"):
        flux = arch_counts.BUILDERS["flux"]["transformer"]().to(torch.bfloat16)
    _layerwise_cast(flux, torch.bfloat16)  # what fp8 mode stores: the modulation linears and norms stay 16-bit
    assert sum(p.numel() * p.element_size() for p in flux.parameters()) == FP8_BYTES["flux"]["transformer"]


# -- applied to the tiny builtins ---------------------------------------------------------------------------

MODELS = ["builtin:tiny-flux", "builtin:tiny-zimage", "builtin:tiny-qwen", "builtin:tiny-sdxl"]


def _run(manager: ModelManager, model: str, seed: int = 7) -> tuple[np.ndarray, dict]:
    spec = JobSpec.model_validate({"model": model, "prompt": "a stone well", "width": 64, "height": 64, "steps": 3,
                                   "seed": seed, "stages": [{"type": "generate"}, {"type": "img2img", "strength": 0.5}]})
    result = run_job(spec, {}, manager, RecordingProgress())
    return result.images[0].astype(int), result.info["stages"][0]


@pytest.fixture(scope="module")
def full_images() -> dict[str, np.ndarray]:
    manager = ModelManager(device="cpu")
    return {**{m: _run(manager, m)[0] for m in MODELS}, **{m + "@8": _run(manager, m, seed=8)[0] for m in MODELS}}


@pytest.mark.parametrize("mode", ["offload", "group-offload"])
def test_offload_modes_give_the_full_mode_image_exactly(mode: str, full_images: dict[str, np.ndarray]) -> None:
    manager = ModelManager(device="cpu", memory_mode=mode)
    for model in MODELS:
        image, record = _run(manager, model)
        assert np.array_equal(image, full_images[model]), model  # same weights, same dtype: bit-identical
        assert record["memory"]["mode"] == mode and record["memory"]["vae_tiling"]
        base = manager.base(model)
        hooked = getattr(base.denoiser, "_diffusers_hook", None) if mode == "group-offload" else \
            getattr(base.denoiser, "_hf_hook", None)
        assert hooked is not None, model  # the hooks are really on our module


@pytest.mark.parametrize("mode", ["fp8", "fp8-offload"])
def test_fp8_modes_stay_close_to_full(mode: str, full_images: dict[str, np.ndarray]) -> None:
    """float8 weights (3 mantissa bits) on random tiny models: the image moves, but by at most 12 levels of
    255 on average and by less than a third of what another seed changes (stated tolerance; random tiny
    weights amplify rounding far more than trained ones; the exactness of the cast is the test below)."""
    manager = ModelManager(device="cpu", memory_mode=mode)
    for model in MODELS:
        image, record = _run(manager, model)
        diff = np.abs(image - full_images[model]).mean()
        other_seed = np.abs(full_images[model + "@8"] - full_images[model]).mean()
        assert 0 < diff <= 12.0 and diff < other_seed / 3, (model, diff, other_seed)
        assert record["memory"]["storage"] == "float8_e4m3fn"
        assert any(p.dtype == torch.float8_e4m3fn for p in manager.base(model).denoiser.parameters())


def test_layerwise_casting_equals_the_model_with_float8_rounded_weights() -> None:
    """fp8 mode computes exactly what the full model computes with its weights rounded to float8."""
    from backend.models.builtins import BASES  # noqa: PLC0415
    from backend.models.memory import _layerwise_cast  # noqa: PLC0415

    tr = BASES["builtin:tiny-flux"]().transformer
    rounded = copy.deepcopy(tr)
    _layerwise_cast(tr, torch.float32)
    stored = dict(tr.named_parameters())
    with torch.no_grad():
        for name, p in rounded.named_parameters():
            p.copy_(stored[name].float())
    assert sum(p.dtype == torch.float8_e4m3fn for p in stored.values()) > 10
    g = torch.Generator().manual_seed(0)
    kw = dict(hidden_states=torch.randn(1, 16, 64, generator=g), encoder_hidden_states=torch.randn(1, 8, 32, generator=g),
              pooled_projections=torch.randn(1, 32, generator=g), timestep=torch.tensor([0.5]), guidance=torch.tensor([3.5]),
              img_ids=torch.zeros(16, 3), txt_ids=torch.zeros(8, 3), return_dict=False)
    with torch.no_grad():
        assert torch.equal(tr(**kw)[0], rounded(**kw)[0])
        assert stored[next(n for n, p in stored.items() if p.dtype == torch.float8_e4m3fn)].dtype == torch.float8_e4m3fn


def test_manager_reports_mode_and_dtypes() -> None:
    manager = ModelManager(device="cpu", memory_mode="offload")
    manager.base("builtin:tiny-flux")
    info = manager.describe()
    assert info["memory_mode"] == "offload" and info["free_device_gb"] is None
    assert info["dtypes"]["flux"] == "float32"  # CPU: float32 for every family
    assert info["memory_plans"]["builtin:tiny-flux"]["offload"] == "model"


def test_serve_memory_mode_flag_shows_in_health_and_the_job_record() -> None:
    """``serve --memory-mode group-offload``: health says so, a FLUX job with ControlNets runs under it and
    its record carries the plan."""
    from _server import start_server, tiny_spec  # noqa: PLC0415

    server = start_server(args=("--memory-mode", "group-offload"))
    try:
        _, health = server.json("GET", "/v1/health")
        assert health["memory_mode"] == "group-offload" and health["free_device_gb"] is None
        assert health["dtypes"]["flux"] == "float32" and health["memory_plans"] == {}
        final = server.wait(server.submit_ok(tiny_spec(steps=2, model="builtin:tiny-flux")))
        assert final["status"] == "done", final
        _, record = server.json("GET", final["record_url"])
        memory = record["resolved"]["stages"][0]["memory"]
        assert memory["mode"] == "group-offload" and memory["offload"] == "group" and memory["dtype"] == "float32"
        _, health = server.json("GET", "/v1/health")
        assert health["memory_plans"]["builtin:tiny-flux"]["mode"] == "group-offload"
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["fp8", "offload", "group-offload"])
def test_a_lora_works_in_each_mode_and_is_removed_after(mode: str, tmp_path: Path) -> None:
    """peft creates LoRA layers in the dtype of the weights they wrap — float8 in fp8 mode, where they
    cannot compute ("mul not implemented for Float8_e4m3fn" before lora._upcast_float8_adapters)."""
    from test_pipeline_flow import _lora, _run  # noqa: PLC0415 - the flow tests' LoRA maker

    manager = ModelManager(device="cpu", memory_mode=mode)
    lora = _lora(tmp_path / "style.safetensors", "builtin:tiny-flux")
    before = _run(manager, [{"type": "generate"}]).images[0]
    with_lora = _run(manager, [{"type": "generate"}], loras=[{"name": str(lora), "weight": 1.0}]).images[0]
    after = _run(manager, [{"type": "generate"}]).images[0]
    assert not np.array_equal(before, with_lora) and np.array_equal(before, after)
