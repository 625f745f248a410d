"""texture_sync on the flow transformers (FLUX.1 dev/schnell, Z-Image, Qwen-Image) through the real stage code
(run_job) on their tiny builtins: the sync hook in flow_denoise fuses x0 = x_t - sigma * v at the unpacked latent
grid; with nothing fused each view is exactly our plain flow denoise of that view; cross-view attention is refused
before any model is loaded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.models import UnsupportedModel
from backend.models.tiny_flux import FLUX_SCHEDULER
from backend.pipelines import flow_models, flow_prompt, flux, run_job, vae
from backend.pipelines.control import ControlUnit
from backend.pipelines.flow_denoise import flow_denoise, make_flow_scheduler
from backend.pipelines.images import to_control
from backend.pipelines.sync.fusion import TexelMap
from backend.pipelines.sync.ingest import check
from backend.pipelines.sync.step import SyncHook
from backend.spec import JobSpec

from _tiny import RecordingProgress
from sync_scene import correspondence, view_inputs
from test_sync_oracle import AMP, disagreement, per_view_psnr
from test_sync_oracle import VIEWS as ORACLE_VIEWS
from test_sync_oracle import scene  # noqa: F401 - the oracle's fixture (a plane seen by 8 views)

VIEWS, SIZE, STEPS, SEED = 4, 128, 3, 3
SUFFIXES = ["front view", "side view", "side view", "back view"]
FLUX = "builtin:tiny-flux"


@pytest.fixture(scope="module")
def part():  # noqa: ANN201
    return correspondence(VIEWS, SIZE)


def spec(model: str = FLUX, fraction: float = 0.8, unit_model: str | None = None, **kw) -> JobSpec:  # noqa: ANN003
    views = [{"controlnets": [{"image": f"depth{v}", "type": "depth", "model": unit_model}], "prompt_suffix": s}
             for v, s in zip(range(VIEWS), SUFFIXES)]
    body = {"model": model, "prompt": "a crate", "width": SIZE, "height": SIZE, "steps": STEPS, "seed": SEED,
            "guidance": 3.5, "preview_every": 1,
            "stages": [{"type": "texture_sync", "views": views, "correspondence": "corr", "sync_fraction": fraction,
                        "texture_width": 256, **kw}]}
    return JobSpec.model_validate(body)


def inputs(data: bytes) -> dict:
    return view_inputs(data, VIEWS, SIZE)


FAMILIES = pytest.mark.parametrize("model", [FLUX, "builtin:tiny-flux-schnell", "builtin:tiny-zimage",
                                             "builtin:tiny-qwen"])


@FAMILIES
def test_synchronized_flow_views_agree_at_shared_texels_and_separate_ones_do_not(manager, part, model) -> None:  # noqa: ANN001
    """Random weights: the mechanism (the views' final latents at shared texels), not image quality."""
    data, maps = part
    prog = RecordingProgress()
    synced = run_job(spec(model, 1.0), inputs(data), manager, prog)
    separate = run_job(spec(model, 0.0), inputs(data), manager, RecordingProgress())
    s, p = (r.info["stages"][0]["sync"] for r in (synced, separate))
    assert s["fused_steps"] == STEPS and p["fused_steps"] == 0
    assert p["latent_spread"] > 0.05
    assert s["latent_spread"] <= 0.25 * p["latent_spread"], (s, p)
    images = synced.images
    texels = maps["image"][2]
    assert len(images) == VIEWS + 2 and all(im.shape == (SIZE, SIZE, 3) for im in images[:VIEWS])
    assert images[VIEWS].shape == (-(-texels // 256), 256, 3) and images[VIEWS + 1].max() == 255
    assert [e for e in prog.events if e[0] == "stage"] == [("stage", 0, "texture_sync", STEPS)]
    assert prog.previews and prog.previews[0][1].shape[1] == VIEWS * prog.previews[0][1].shape[0]


@pytest.mark.parametrize("unit_model", [None, "builtin:tiny-flux-controlnet-union"])
def test_flux_views_run_batched_and_micro_batches_do_not_change_the_result(manager, part, unit_model) -> None:  # noqa: ANN001
    """Batched FLUX calls stack each view's prompt, pooled vector and ControlNet condition (a Union net's
    control mode too); one view per call must give the same views."""
    data, _ = part
    whole = run_job(spec(micro_batch=4, unit_model=unit_model), inputs(data), manager, RecordingProgress())
    pieces = run_job(spec(micro_batch=1, unit_model=unit_model), inputs(data), manager, RecordingProgress())
    assert whole.info["stages"][0]["sync"]["micro_batch"] == 4 and pieces.info["stages"][0]["sync"]["micro_batch"] == 1
    for a, b in zip(whole.images, pieces.images):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def _plain_view(manager, model: str, v: int, noise: torch.Tensor, depth: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """View ``v`` through our plain flow path on its own (one velocity, one scheduler, no hook), as a generate
    stage runs it but from the given noise; decoded as the stage decodes."""
    base = manager.base(model)
    net_id = manager.controlnet_id(base.id, base.family, "depth", None)
    net = manager.controlnet(net_id)
    unit = ControlUnit(net, net_id, to_control(depth, manager.device, net.dtype), 1.0, 0.0, 1.0, "balanced", "depth")
    controls = flow_models.prepare_controls(base, [unit], SEED)
    cond = flow_prompt.encode(base, f"a crate, {SUFFIXES[v]}", "", 3.5)
    sched = make_flow_scheduler(base.scheduler_config, STEPS, flux.image_seq_len(SIZE, SIZE, 8), manager.device)
    h = w = SIZE // 8
    velocity = flow_models.velocity(base, cond, 3.5, controls, h, w)
    latents = flow_denoise(velocity, sched, sched.timesteps, noise, lambda: False, lambda *a: None)
    px = vae.decode(base, latents)
    return px[0].clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


@pytest.mark.parametrize("model", [FLUX, "builtin:tiny-zimage"])
def test_with_nothing_fused_each_view_is_the_plain_flow_denoise_of_that_view(manager, part, model) -> None:  # noqa: ANN001
    """The hook is the only change: sync_fraction 0 gives, per view, exactly the plain flow denoise from the
    same texture-space noise (micro-batch 1); fused steps do change the views."""
    data, maps = part
    images = inputs(data)
    off = run_job(spec(model, 0.0, micro_batch=1), images, manager, RecordingProgress()).images
    on = run_job(spec(model, 0.8, micro_batch=1), images, manager, RecordingProgress()).images
    idx, w, m = maps["latent"]
    channels = manager.base(model).latent_channels
    noise = TexelMap(idx, w, m).render_noise(channels, torch.Generator("cpu").manual_seed(SEED))
    with torch.inference_mode():
        for v in range(VIEWS):
            plain = _plain_view(manager, model, v, noise[v:v + 1], images[f"depth{v}"])
            assert np.array_equal(off[v], plain), v
            assert np.abs(on[v].astype(int) - plain).mean() > 1.0, v


def test_cross_view_attention_on_flow_models_is_refused_before_any_model_loads(manager, part, monkeypatch) -> None:  # noqa: ANN001
    data, _ = part
    loads: list[str] = []
    monkeypatch.setattr(manager, "base", lambda model_id, **kw: loads.append(model_id))
    for model in (FLUX, "builtin:tiny-flux-schnell", "builtin:tiny-zimage", "builtin:tiny-qwen"):
        with pytest.raises(UnsupportedModel, match="cross_view_attention") as err:
            run_job(spec(model, cross_view_attention=True), inputs(data), manager, RecordingProgress())
        assert "set cross_view_attention to false" in err.value.fix
        with pytest.raises(UnsupportedModel, match="cross_view_attention"):  # at submit (routes_jobs calls check)
            check(data, spec(model, cross_view_attention=True), "corr")
    assert loads == []
    assert check(data, spec("builtin:tiny", cross_view_attention=True), "corr").views == VIEWS  # UNets keep it


class FlowOracle:
    """The oracle stand-in of test_sync_oracle for the flow loop: a velocity v = (x_t - x0) / sigma whose x0 is
    what the latents hold, pulled toward the known texture, plus per-view noise that falls with sigma."""

    def __init__(self, sched, eps0: torch.Tensor, truth_views: torch.Tensor, seed: int) -> None:  # noqa: ANN001
        self.sched, self.eps0, self.truth = sched, eps0, truth_views
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, i: int, n: int) -> torch.Tensor:
        s = float(self.sched.sigmas[i])
        content = (x - s * self.eps0) / (1 - s) if s < 1 - 1e-6 else torch.zeros_like(x)
        x0 = content + s ** 0.5 * (self.truth - content) + AMP * s ** 6 * torch.randn(x.shape, generator=self.gen)
        return (x - x0) / s


def test_flow_oracle_synchronized_rebuilds_the_known_texture_and_separate_does_not(scene) -> None:  # noqa: ANN001, F811
    """The scheduler-consistent update with flow matching's a = 1 - sigma, s = sigma, through the real
    flow_denoise loop and FLUX.1's scheduler config (dynamic shift): >= 30 dB per view synchronized only."""
    tmap, _, truth_views = scene
    res = truth_views.shape[-1]

    def run(synchronized: bool) -> torch.Tensor:
        sched = make_flow_scheduler(FLUX_SCHEDULER, 30, 4096, torch.device("cpu"))
        gen = torch.Generator().manual_seed(0)
        eps0 = tmap.render_noise(3, gen) if synchronized else torch.randn(ORACLE_VIEWS, 3, res, res, generator=gen)
        hook = SyncHook(tmap, sched, sched.timesteps, 0.8) if synchronized else None
        oracle = FlowOracle(sched, eps0, truth_views, 1)
        return flow_denoise(oracle, sched, sched.timesteps, eps0, lambda: False, lambda *a: None, None, hook)

    synced, separate = run(True), run(False)
    assert per_view_psnr(scene, synced) >= 30.0
    assert per_view_psnr(scene, separate) < 30.0
    assert disagreement(scene, synced) <= 0.25 * disagreement(scene, separate)
