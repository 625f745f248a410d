"""Reference-image models (IP-Adapter, FLUX.1 Redux) run in the dtype of the base model they feed — the
family's compute dtype (models/memory.py), not the device default — and are cached per dtype.

On a CUDA card the device default is float16 while FLUX computes in bfloat16. The CPU here has one dtype
(float32) for every family, so these tests make the family dtype bfloat16 with one explicit monkeypatch of
``default_dtype`` (what ``ModelManager.family_dtype`` asks); the device default stays float32."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from _tiny import RecordingProgress
from backend.models import ModelManager, manager_memory
from backend.models.ip_adapter import TINY_IP_ADAPTER_ID, IPAdapter
from backend.models.redux import TINY_FLUX_REDUX_ID
from backend.pipelines import reference, run_job
from backend.spec import JobSpec

REF = np.random.default_rng(11).integers(0, 256, (40, 48, 3), dtype=np.uint8)


def family_dtypes(monkeypatch: pytest.MonkeyPatch, dtypes: dict[str, str]) -> None:
    """Make ``family_dtype`` answer ``dtypes[family]`` (the device default, float32, for the others)."""
    monkeypatch.setattr(manager_memory, "default_dtype",
                        lambda family, device_type, bf16: dtypes.get(family, "float32"))


def spec(model: str, width: int = 64, height: int = 64, **stage: object) -> JobSpec:
    return JobSpec.model_validate({"model": model, "prompt": "a red barn", "width": width, "height": height,
                                   "steps": 2, "seed": 3, "stages": [{"type": "generate", **stage}]})


def dtypes_seen(module: torch.nn.Module) -> tuple[list[torch.dtype], Callable[[], None]]:
    """The dtypes of what ``module`` outputs on each forward (first tensor of the output), and the unhook."""
    seen: list[torch.dtype] = []

    def record(_m: torch.nn.Module, _args: object, out: Any) -> None:
        first = out if isinstance(out, torch.Tensor) else next(v for v in out.values() if isinstance(v, torch.Tensor))
        seen.append(first.dtype)

    handle = module.register_forward_hook(record)
    return seen, handle.remove


def adapter_dtypes(adapter: IPAdapter) -> set[torch.dtype]:
    tensors = [t for part in adapter.state_dict.values() for t in part.values()]
    return {t.dtype for t in tensors} | {p.dtype for p in adapter.image_encoder.parameters()}


def test_ip_adapter_is_placed_and_runs_in_the_base_family_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    family_dtypes(monkeypatch, {"sd15": "bfloat16"})
    manager = ModelManager(device="cpu")
    assert manager.dtype == torch.float32  # the device default stays float32
    base = manager.base("builtin:tiny")
    assert base.unet.dtype == torch.bfloat16 and base.compute_dtype == torch.bfloat16

    adapter = manager.ip_adapter(TINY_IP_ADAPTER_ID, base)
    assert adapter_dtypes(adapter) == {torch.bfloat16}
    encoded, unhook = dtypes_seen(adapter.image_encoder)
    try:
        result = run_job(spec("builtin:tiny", reference=[{"image": "ref", "weight": 1.0}]), {"ref": REF}, manager,
                         RecordingProgress())
    finally:
        unhook()
    assert encoded and set(encoded) == {torch.bfloat16}  # the CLIP image encoder ran in bfloat16
    assert result.info["stages"][0]["reference"][0]["model"] == TINY_IP_ADAPTER_ID
    assert result.images[0].shape == (64, 64, 3) and result.images[0].std() > 0


def test_flux_redux_is_placed_and_runs_in_the_base_family_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    family_dtypes(monkeypatch, {"flux": "bfloat16"})
    manager = ModelManager(device="cpu")
    base = manager.base("builtin:tiny-flux")
    assert base.transformer.dtype == torch.bfloat16 and manager.dtype == torch.float32

    redux = manager.flux_redux(TINY_FLUX_REDUX_ID, base)
    assert {p.dtype for m in (redux.image_encoder, redux.image_embedder) for p in m.parameters()} == {torch.bfloat16}
    embedded, unhook = dtypes_seen(redux.image_embedder)
    try:
        result = run_job(spec("builtin:tiny-flux", width=96, reference=[{"image": "ref", "weight": 1.0}]),
                         {"ref": REF}, manager, RecordingProgress())
    finally:
        unhook()
    assert embedded == [torch.bfloat16]  # the Redux tokens were made in bfloat16
    assert result.info["stages"][0]["reference"][0]["model"] == TINY_FLUX_REDUX_ID
    assert result.images[0].shape == (64, 96, 3) and result.images[0].std() > 0


def test_one_reference_model_for_bases_of_two_dtypes_is_cached_once_per_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    """FLUX.1 dev and schnell share the Redux model (the same width); with dev in bfloat16 and schnell in
    float32 each gets it in its own dtype, not the copy the other one loaded first."""
    family_dtypes(monkeypatch, {"flux": "bfloat16"})
    manager = ModelManager(device="cpu")
    dev, schnell = manager.base("builtin:tiny-flux"), manager.base("builtin:tiny-flux-schnell")
    assert (dev.compute_dtype, schnell.compute_dtype) == (torch.bfloat16, torch.float32)
    for base in (dev, schnell, dev):
        redux = manager.flux_redux(TINY_FLUX_REDUX_ID, base)
        assert redux.image_embedder.dtype == redux.image_encoder.dtype == base.compute_dtype
    assert manager.flux_redux(TINY_FLUX_REDUX_ID, dev) is manager.flux_redux(TINY_FLUX_REDUX_ID, dev)
    assert len([k for k in manager.cache.keys() if k[0] == "flux_redux"]) == 2


def test_under_fp8_storage_the_ip_adapter_is_in_the_compute_dtype_and_the_unet_stays_float8() -> None:
    """fp8 mode stores the UNet in float8 and computes each layer in the compute dtype (float32 on the CPU):
    the adapter belongs in the compute dtype, and installing it must not cast the stored UNet up (diffusers'
    ``_load_ip_adapter_weights`` ends with ``unet.to(unet.dtype)``, which is the compute dtype here: the
    whole UNet at 16/32 bits, the memory fp8 mode was chosen to avoid)."""
    manager = ModelManager(device="cpu", memory_mode="fp8")
    base = manager.base("builtin:tiny")
    stored = {n: p.dtype for n, p in base.unet.named_parameters()}
    assert torch.float8_e4m3fn in stored.values() and base.compute_dtype == torch.float32
    adapter = manager.ip_adapter(TINY_IP_ADAPTER_ID, base)
    assert adapter_dtypes(adapter) == {torch.float32}
    with torch.no_grad(), reference.applied(base.unet, [reference.ReferenceInput(adapter, REF, 1.0)], cfg=True):
        assert {n: p.dtype for n, p in base.unet.named_parameters() if n in stored} == stored
        ip = [p for n, p in base.unet.named_parameters() if n not in stored]
        assert ip and {p.dtype for p in ip} == {torch.float32}
    result = run_job(spec("builtin:tiny", reference=[{"image": "ref", "weight": 1.0}]), {"ref": REF}, manager,
                     RecordingProgress())
    record = result.info["stages"][0]
    assert record["reference"] and record["memory"]["storage"] == "float8_e4m3fn" and result.images[0].std() > 0
    assert {n: p.dtype for n, p in base.unet.named_parameters()} == stored
