"""Stage chaining, determinism, inpaint masking, progress/previews and cancel on builtin:tiny."""

from __future__ import annotations

import numpy as np
import pytest

from backend.pipelines import JobCancelled, run_job
from backend.spec import JobSpec

from _tiny import RecordingProgress

SIZE = 64


def spec(**kw) -> JobSpec:  # noqa: ANN003
    body = {"model": "builtin:tiny", "prompt": "a house", "width": SIZE, "height": SIZE, "steps": 4, "seed": 7,
            "stages": [{"type": "generate"}]}
    body.update(kw)
    return JobSpec.model_validate(body)


def noise_image(seed: int, h: int = SIZE, w: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    mask = np.zeros((SIZE, SIZE, 3), np.uint8)
    mask[16:48, 20:44] = 255
    return {"depth": noise_image(1), "edges": noise_image(2), "photo": noise_image(3), "mask": mask,
            "big_depth": noise_image(4, 96, 128)}


def test_generate_img2img_inpaint_chain(manager, images) -> None:  # noqa: ANN001
    s = spec(stages=[{"type": "generate", "controlnets": [{"image": "depth", "type": "depth"}]},
                     {"type": "img2img", "strength": 0.5},
                     {"type": "inpaint", "mask": "mask", "controlnets": [{"image": "edges", "type": "edges"}]}])
    prog = RecordingProgress()
    result = run_job(s, images, manager, prog)
    out = result.images[0]
    assert out.shape == (SIZE, SIZE, 3) and out.dtype == np.uint8
    stages = [e for e in prog.events if e[0] == "stage"]
    assert stages == [("stage", 0, "generate", 4), ("stage", 1, "img2img", 2), ("stage", 2, "inpaint", 4)]
    info = result.info
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert [st["type"] for st in info["stages"]] == ["generate", "img2img", "inpaint"]
    assert info["stages"][0]["controlnets"][0]["model"] == "builtin:tiny-controlnet-depth"
    assert info["stages"][2]["controlnets"][0]["model"] == "builtin:tiny-controlnet-edges"
    assert info["stages"][1]["strength"] == 0.5 and info["stages"][1]["steps_run"] == 2


def test_each_stage_consumes_the_previous_image(manager, images) -> None:  # noqa: ANN001
    first = run_job(spec(), images, manager, RecordingProgress()).images[0]
    chained = run_job(spec(stages=[{"type": "generate"}, {"type": "img2img", "strength": 0.3}]), images, manager,
                      RecordingProgress()).images[0]
    explicit = run_job(spec(stages=[{"type": "img2img", "image": "photo", "strength": 0.3}]),
                       {**images, "photo": first}, manager, RecordingProgress()).images[0]
    assert np.array_equal(chained, explicit)


def test_same_spec_and_seed_give_identical_pixels(manager, images) -> None:  # noqa: ANN001
    s = spec(stages=[{"type": "generate", "controlnets": [{"image": "depth", "type": "depth"}]}])
    a = run_job(s, images, manager, RecordingProgress()).images[0]
    b = run_job(s, images, manager, RecordingProgress()).images[0]
    c = run_job(spec(seed=8, stages=s.model_dump()["stages"]), images, manager, RecordingProgress()).images[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_inpaint_keeps_pixels_outside_the_mask(manager, images) -> None:  # noqa: ANN001
    s = spec(stages=[{"type": "inpaint", "image": "photo", "mask": "mask"}])
    out = run_job(s, images, manager, RecordingProgress()).images[0]
    keep = images["mask"][:, :, 0] == 0
    assert np.array_equal(out[keep], images["photo"][keep])
    assert not np.array_equal(out[~keep], images["photo"][~keep])


def test_img2img_strength_changes_how_far_it_moves(manager, images) -> None:  # noqa: ANN001
    def dist(strength: float) -> float:
        s = spec(steps=10, stages=[{"type": "img2img", "image": "photo", "strength": strength}])
        out = run_job(s, images, manager, RecordingProgress()).images[0]
        return float(np.abs(out.astype(int) - images["photo"].astype(int)).mean())

    assert dist(0.1) < dist(0.9)


def test_progress_steps_and_previews(manager, images) -> None:  # noqa: ANN001
    prog = RecordingProgress()
    run_job(spec(steps=6, preview_every=2), images, manager, prog)
    assert [e[1] for e in prog.events if e[0] == "step"] == [1, 2, 3, 4, 5, 6]
    assert [step for step, _ in prog.previews] == [2, 4]
    for _, img in prog.previews:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.std() > 0


def test_cancel_takes_effect_within_one_step(manager, images) -> None:  # noqa: ANN001
    prog = RecordingProgress(cancel_after_steps=2)
    with pytest.raises(JobCancelled):
        run_job(spec(steps=10), images, manager, prog)
    assert prog.steps_seen == 2


def test_control_image_of_another_size_is_resized_and_noted(manager, images) -> None:  # noqa: ANN001
    s = spec(stages=[{"type": "generate", "controlnets": [{"image": "big_depth", "type": "depth"}]}])
    result = run_job(s, images, manager, RecordingProgress())
    assert any("resized from 128x96" in n for n in result.info["stages"][0]["notes"])


def test_missing_image_is_a_clear_error(manager) -> None:  # noqa: ANN001
    s = spec(stages=[{"type": "generate", "controlnets": [{"image": "nope", "type": "depth"}]}])
    with pytest.raises(ValueError, match="'nope' was not sent"):
        run_job(s, {}, manager, RecordingProgress())


@pytest.mark.parametrize("scheduler", ["euler_a", "euler", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "unipc", "lcm"])
def test_every_scheduler_runs_and_differs_from_euler_a(manager, images, scheduler: str) -> None:  # noqa: ANN001
    out = run_job(spec(scheduler=scheduler), images, manager, RecordingProgress()).images[0]
    ref = run_job(spec(scheduler="euler_a"), images, manager, RecordingProgress()).images[0]
    assert out.shape == (SIZE, SIZE, 3) and out.std() > 0
    assert (scheduler == "euler_a") == np.array_equal(out, ref)


def test_runs_at_512(manager, images) -> None:  # noqa: ANN001
    big = {"depth": noise_image(5, 512, 512)}
    s = spec(width=512, height=512, steps=2,
             stages=[{"type": "generate", "controlnets": [{"image": "depth", "type": "depth"}]}])
    assert run_job(s, big, manager, RecordingProgress()).images[0].shape == (512, 512, 3)


def test_previews_use_taesd_when_it_is_in_the_cache(tmp_path, monkeypatch, images) -> None:  # noqa: ANN001
    """With madebyollin/taesd installed, previews are decoded at full size instead of the 1/8 approximation."""
    import torch
    from diffusers import AutoencoderTiny

    from _tiny import install_in_hf_cache
    from backend.models import ModelManager

    torch.manual_seed(0)
    src = tmp_path / "taesd"
    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                    num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1)).save_pretrained(src)
    install_in_hf_cache(tmp_path / "hub", "madebyollin/taesd", src)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    prog = RecordingProgress()
    run_job(spec(steps=4, preview_every=2), images, ModelManager(device="cpu"), prog)
    assert [img.shape for _, img in prog.previews] == [(SIZE, SIZE, 3)]
