"""Micro-batching, the micro-batch picker and scheduler coefficients of the sync step."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler

from backend.models.configs import SD15_SCHEDULER
from backend.pipelines.sync.step import MicroBatched, pick_micro_batch, signal_noise


class Recorder:
    dtype = torch.float32

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, sample, t, encoder_hidden_states, added_cond_kwargs, down_block_additional_residuals,  # noqa: ANN001
                 mid_block_additional_residual, return_dict=False):  # noqa: ANN001
        self.batches.append(sample.shape[0])
        out = sample * encoder_hidden_states.mean(dim=(1, 2))[:, None, None, None] + t
        out = out + added_cond_kwargs["text_embeds"][:, :, None, None] + down_block_additional_residuals[0]
        return (out + mid_block_additional_residual,)


def test_micro_batches_give_the_full_batch_result() -> None:
    g = torch.Generator().manual_seed(0)
    b = 6
    args = dict(encoder_hidden_states=torch.randn(b, 3, 5, generator=g),
                added_cond_kwargs={"text_embeds": torch.randn(b, 4, generator=g)},
                down_block_additional_residuals=[torch.randn(b, 4, 2, 2, generator=g)],
                mid_block_additional_residual=torch.randn(b, 4, 2, 2, generator=g), return_dict=False)
    x = torch.randn(b, 4, 2, 2, generator=g)
    full = Recorder()(x, torch.tensor(3.0), **args)[0]
    rec = Recorder()
    parts = MicroBatched(rec, 4)(x, torch.tensor(3.0), **args)[0]
    assert rec.batches == [4, 2]
    torch.testing.assert_close(parts, full)
    assert MicroBatched(rec, 4).dtype == torch.float32


def test_pick_micro_batch_fits_free_memory() -> None:
    gib = 1 << 30
    assert pick_micro_batch(80 * gib, gib, 16) == 16  # everything fits
    assert pick_micro_batch(10 * gib, gib, 16) == 6  # 7 fit in 70 %: rounded down to even
    assert pick_micro_batch(gib // 2, gib, 16) == 1  # never below one


def test_signal_noise_per_scheduler_family() -> None:
    cfg = {k: v for k, v in SD15_SCHEDULER.items() if not k.startswith("_")}
    ddim = DDIMScheduler.from_config(cfg)
    ddim.set_timesteps(10)
    a, s = signal_noise(ddim, ddim.timesteps, 3)
    assert a * a + s * s == pytest.approx(1.0) and a * a == pytest.approx(float(ddim.alphas_cumprod[ddim.timesteps[3]]))
    assert signal_noise(ddim, ddim.timesteps, 10) == (1.0, 0.0)
    euler = EulerDiscreteScheduler.from_config(cfg)
    euler.set_timesteps(10)
    assert signal_noise(euler, euler.timesteps[4:], 0) == (1.0, pytest.approx(float(euler.sigmas[4])))  # a tail
    flow = FlowMatchEulerDiscreteScheduler()
    flow.set_timesteps(10)
    a, s = signal_noise(flow, flow.timesteps, 2)
    assert a + s == pytest.approx(1.0) and s == pytest.approx(float(flow.sigmas[2]))
