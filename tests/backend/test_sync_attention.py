"""Cross-view self-attention (backend/pipelines/sync/attention.py) on builtin:tiny's attention layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from backend.models.tiny import build_tiny_base
from backend.pipelines import run_job
from backend.pipelines.sync.attention import CrossViewAttention, ViewAttentionState, install, neighbours_ring

from _tiny import RecordingProgress


@pytest.fixture(scope="module")
def attn():  # noqa: ANN201
    unet = build_tiny_base().unet
    return next(m for name, m in unet.named_modules() if name.endswith("attn1"))


def test_neighbours_ring() -> None:
    assert neighbours_ring(4) == [[3, 1], [0, 2], [1, 3], [2, 0]]
    assert neighbours_ring(2) == [[1], [0]] and neighbours_ring(1) == [[]]


def test_without_neighbours_or_reference_it_is_plain_self_attention(attn) -> None:  # noqa: ANN001
    x = torch.randn(6, 16, attn.to_q.in_features, generator=torch.Generator().manual_seed(0))
    proc = CrossViewAttention(3, [[], [], []], None, ViewAttentionState())
    with torch.no_grad():
        torch.testing.assert_close(proc(attn, x), AttnProcessor2_0()(attn, x), rtol=1e-5, atol=1e-5)


def test_a_view_sees_its_neighbours_and_the_early_reference_only(attn) -> None:  # noqa: ANN001
    views = 6
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2 * views, 16, attn.to_q.in_features, generator=g)  # two CFG halves
    state = ViewAttentionState(step=0, reference_steps=1)
    proc = CrossViewAttention(views, neighbours_ring(views), 3, state)

    def changed(view_perturbed: int) -> list[bool]:
        y = x.clone()
        y[view_perturbed] += 1.0  # first CFG half only
        with torch.no_grad():
            a, b = proc(attn, x), proc(attn, y)
        return [not torch.allclose(a[v], b[v], atol=1e-6) for v in range(2 * views)]

    # view 1 influences itself and its ring neighbours 0 and 2, in its own CFG half only
    assert changed(1) == [True, True, True, False, False, False] + [False] * views
    # view 3 is the reference: everyone attends to it while step < reference_steps
    assert changed(3)[:views] == [True] * views
    state.step = 1  # past the reference steps: only its neighbours 2 and 4
    assert changed(3)[:views] == [False, False, True, True, True, False]
    # a micro-batch without every view falls back to plain self-attention
    with torch.no_grad():
        torch.testing.assert_close(proc(attn, x[:4]), AttnProcessor2_0()(attn, x[:4]))
    assert state.fallbacks == 1


def test_install_and_restore(manager) -> None:  # noqa: ANN001
    unet = build_tiny_base().unet
    before = {k: type(v) for k, v in unet.attn_processors.items()}
    previous = install(unet, 4, 0, ViewAttentionState())
    kinds = {k: type(v).__name__ for k, v in unet.attn_processors.items()}
    assert all(v == "CrossViewAttention" for k, v in kinds.items() if k.endswith("attn1.processor"))
    assert all(v == "AttnProcessor2_0" for k, v in kinds.items() if k.endswith("attn2.processor"))
    unet.set_attn_processor(previous)
    assert {k: type(v) for k, v in unet.attn_processors.items()} == before


def test_texture_sync_with_cross_view_attention(manager) -> None:  # noqa: ANN001
    from test_sync_stage import inputs, spec
    from sync_scene import correspondence

    data, _ = correspondence(4, 128)
    on = run_job(spec(cross_view_attention=True, micro_batch=2), inputs(data), manager, RecordingProgress())
    off = run_job(spec(), inputs(data), manager, RecordingProgress())
    info = on.info["stages"][0]
    assert info["sync"]["cross_view_attention"] and info["sync"]["attention_fallbacks"] == 0
    assert info["sync"]["micro_batch"] == 4 and any("micro-batch raised to 4" in n for n in info["notes"])
    assert any(not np.array_equal(a, b) for a, b in zip(on.images, off.images))
    # the cached model got its own processors back
    base = manager.base("builtin:tiny")
    assert all(type(p).__name__ == "AttnProcessor2_0" for p in base.unet.attn_processors.values())
