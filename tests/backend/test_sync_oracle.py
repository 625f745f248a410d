"""The oracle test of synchronized denoising: a stand-in denoiser that knows the texture.

Its x0 prediction for view v is what its latents already hold (``content``), pulled toward the known
texture rendered into v (strongly at high noise, not at all at the end), plus a perturbation drawn
independently per view, per step and per pixel whose size falls with the noise level (large-scale
choices are made early, as in a real model)::

    x0_v = content_v + s ** 0.5 * (truth_v - content_v) + AMP * s ** 6 * noise

It runs through the real ``denoise`` loop and a real DDIM scheduler, with ``SyncHook`` or without.
Synchronized, every view must paint the texture at >= 30 dB PSNR on the texels it sees and the views
must agree (mean abs difference at shared texels <= 0.25 x separate's); separate must fail the 30 dB.
With a linear stand-in like this one, the *average* of the separate views (a bake) is as good as the
synchronized result; what fusion buys is that each view is right on its own (the views agree), which a
bake that favours head-on views, and any seam between views, depends on.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler

from backend.models.configs import SD15_SCHEDULER
from backend.pipelines.denoise import denoise
from backend.pipelines.prompt import Conditioning
from backend.pipelines.sync.fusion import TexelMap, bake
from backend.pipelines.sync.step import SyncHook

AMP = 2.5
VIEWS = 8
RES = 24


@pytest.fixture(scope="module")
def scene():  # noqa: ANN201
    from addon.core.projection import rasterize_view
    from addon.core.sync_views import PackedTexels, view_correspondence
    from addon.core.uv_raster import rasterize_uv
    from tests.addon_core.projection_scenes import normals_of, ortho_view, plane_z

    tri, uv = plane_z(0.0, 1.0)
    packed = PackedTexels([(uv, rasterize_uv(uv, (16, 16)))])
    angles = np.linspace(0, 2 * np.pi, VIEWS + 1)[:VIEWS]
    views = [ortho_view((5 * np.cos(a), 5 * np.sin(a), 5), (0, 0, 0), res=(RES, RES), scale=3.2) for a in angles]
    idx, wts = (np.stack(a) for a in zip(*(view_correspondence(v, rasterize_view(v, tri), packed, tri, normals_of(tri))
                                          for v in views)))
    tmap = TexelMap(idx, wts, packed.count)
    yy, xx = np.mgrid[0:16, 0:16] / 15
    tex = np.stack([0.5 + 0.4 * np.sin(3 * xx), 0.5 + 0.4 * np.cos(2 * yy), 0.3 + 0.5 * xx * yy], -1)
    truth = torch.tensor(tex.reshape(-1, 3), dtype=torch.float32)
    truth_views = tmap.gather(truth, torch.ones(packed.count), torch.full((VIEWS, 3, RES, RES), 0.5))
    return tmap, truth, truth_views


class Oracle:
    """Stands in for the UNet: predicts epsilon so that the scheduler sees the x0 above."""

    dtype = torch.float32

    def __init__(self, sched, eps0: torch.Tensor, truth_views: torch.Tensor, seed: int) -> None:  # noqa: ANN001
        self.sched, self.eps0, self.truth = sched, eps0, truth_views
        self.gen = torch.Generator().manual_seed(seed)

    def signal_noise(self, t: torch.Tensor) -> tuple[float, float]:
        if isinstance(self.sched, EulerDiscreteScheduler):
            k = int((self.sched.timesteps == t).nonzero()[0])
            return 1.0, float(self.sched.sigmas[k])
        abar = float(self.sched.alphas_cumprod[int(t)])
        return abar ** 0.5, (1 - abar) ** 0.5

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **_: object) -> tuple[torch.Tensor]:
        a, s = self.signal_noise(t)
        if isinstance(self.sched, EulerDiscreteScheduler):  # the input was scaled by 1 / sqrt(sigma^2 + 1)
            x = x * (s * s + 1) ** 0.5
            s_rel = s / (s * s + 1) ** 0.5  # the noise level on the DDPM scale
        else:
            s_rel = s
        content = (x - s * self.eps0) / a
        x0 = content + s_rel ** 0.5 * (self.truth - content) + AMP * s_rel ** 6 * torch.randn(x.shape, generator=self.gen)
        eps = (x - a * x0) / s
        return (eps,)


def run(scene, synchronized: bool, scheduler: str = "ddim", seed: int = 0):  # noqa: ANN001, ANN201
    tmap, _, truth_views = scene
    cfg = {k: v for k, v in SD15_SCHEDULER.items() if not k.startswith("_")}
    sched = (DDIMScheduler.from_config({**cfg, "set_alpha_to_one": True}) if scheduler == "ddim"
             else EulerDiscreteScheduler.from_config(cfg))
    sched.set_timesteps(30)
    gen = torch.Generator().manual_seed(seed)
    eps0 = tmap.render_noise(3, gen) if synchronized else torch.randn(VIEWS, 3, RES, RES, generator=gen)
    base = types.SimpleNamespace(unet=Oracle(sched, eps0, truth_views, seed + 1))
    cond = Conditioning(torch.zeros(1, 1, 1), None, False)
    hook = SyncHook(tmap, sched, sched.timesteps, 0.8) if synchronized else None
    return denoise(base, sched, sched.timesteps, eps0 * sched.init_noise_sigma, cond, 1.0, [], gen,
                   lambda: False, lambda *a: None, None, hook)


def per_view_psnr(scene, out: torch.Tensor) -> float:  # noqa: ANN001
    tmap, _, truth_views = scene
    seen = tmap.pixel_mask().expand(-1, 3, -1, -1)
    return float(10 * torch.log10(1 / ((out - truth_views)[seen] ** 2).mean()))


def disagreement(scene, out: torch.Tensor) -> float:  # noqa: ANN001
    """Mean abs difference between a view's colour at a texel and the texel's mean over views."""
    tmap = scene[0]
    tex, wsum = bake(tmap, out, exponent=0.0)  # plain mean over the pixels that see each texel
    rows = out.permute(0, 2, 3, 1).reshape(-1, out.shape[1])[tmap.pix]
    shared = tmap.coverage[tmap.tex] > 1
    return float((rows - tex[tmap.tex]).abs()[shared].mean())


@pytest.mark.parametrize("scheduler", ["ddim", "euler"])
def test_synchronized_rebuilds_the_known_texture_in_every_view_and_separate_does_not(scene, scheduler) -> None:  # noqa: ANN001
    synced, separate = run(scene, True, scheduler), run(scene, False, scheduler)
    assert per_view_psnr(scene, synced) >= 30.0
    assert per_view_psnr(scene, separate) < 30.0
    assert disagreement(scene, synced) <= 0.25 * disagreement(scene, separate)


def test_the_bake_of_the_synchronized_views_is_the_texture(scene) -> None:  # noqa: ANN001
    tmap, truth, _ = scene
    tex, wsum = bake(tmap, run(scene, True), exponent=6.0)
    seen = wsum > 0
    assert seen.float().mean() > 0.8  # a few texels fall between the pixel centres of every view
    assert float(10 * torch.log10(1 / ((tex[seen] - truth[seen]) ** 2).mean())) >= 30.0
