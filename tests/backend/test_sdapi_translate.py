"""The A1111 -> job spec translation, without a server: what is mapped, what is refused, how images fit."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from backend.api import sdapi_answer as answer
from backend.api import sdapi_images as images
from backend.api import sdapi_translate as tr
from backend.spec import JobSpec


def b64(array: np.ndarray, fmt: str = "PNG", prefix: bool = True) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    text = base64.b64encode(buf.getvalue()).decode()
    return ("data:image/png;base64," if prefix else "") + text


def ramp(w: int, h: int) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float64)[None, :].repeat(h, 0)
    return np.repeat(x.astype(np.uint8)[:, :, None], 3, axis=2)


def unit(**over: object) -> dict:
    u = {"enabled": True, "module": "none", "model": "builtin:tiny-controlnet-depth [abc12345]", "weight": 0.8,
         "image": b64(ramp(64, 64)), "resize_mode": "Crop and Resize", "guidance_start": 0.1, "guidance_end": 0.9,
         "control_mode": "My prompt is more important", "pixel_perfect": True, "processor_res": 512}
    u.update(over)
    return u


BASE = {"prompt": "a wall", "steps": 3, "width": 64, "height": 64, "seed": 5, "cfg_scale": 6.5,
        "override_settings": {"sd_model_checkpoint": "builtin:tiny"}}


def test_txt2img_maps_every_mapped_field_and_validates_as_a_spec() -> None:
    t = tr.translate({**BASE, "sampler_name": "DPM++ 2M", "scheduler": "Karras", "batch_size": 2, "n_iter": 2,
                      "negative_prompt": "blur", "alwayson_scripts": {"controlnet": {"args": [unit()]}}},
                     "txt2img", None)
    assert t.seeds == [5, 6, 7, 8] and [s["seed"] for s in t.specs] == t.seeds
    spec = JobSpec.model_validate(t.specs[0])
    assert (spec.model, spec.prompt, spec.negative_prompt, spec.steps, spec.guidance, spec.scheduler) == \
        ("builtin:tiny", "a wall", "blur", 3, 6.5, "dpmpp_2m_karras")
    cn = spec.stages[0].controlnets[0]
    assert (cn.model, cn.type, cn.weight, cn.start, cn.end, cn.mode) == \
        ("builtin:tiny-controlnet-depth", "depth", 0.8, 0.1, 0.9, "prompt")
    assert t.images[cn.image].shape == (64, 64, 3)


@pytest.mark.parametrize("sampler,schedule,ours", [
    ("Euler a", None, "euler_a"), ("k_euler_a", "Automatic", "euler_a"), ("Euler", "normal", "euler"),
    ("DPM++ 2M", "Automatic", "dpmpp_2m_karras"), ("DPM++ 2M", "Normal", "dpmpp_2m"),
    ("DPM++ 2M Karras", None, "dpmpp_2m_karras"), ("DDIM", None, "ddim"), ("UniPC", None, "unipc"), ("LCM", None, "lcm"),
])
def test_sampler_names_map_to_our_schedulers(sampler: str, schedule: str | None, ours: str) -> None:
    assert tr.scheduler_for(sampler, schedule) == ours


@pytest.mark.parametrize("sampler,schedule,field", [("Heun", None, "sampler_name"), ("Euler a", "Karras", "scheduler"),
                                                    ("DPM++ SDE", None, "sampler_name")])
def test_unavailable_samplers_are_refused_by_field(sampler: str, schedule: str | None, field: str) -> None:
    with pytest.raises(tr.Unsupported) as err:
        tr.scheduler_for(sampler, schedule)
    assert err.value.field == field


@pytest.mark.parametrize("extra,field", [
    ({"restore_faces": True}, "restore_faces"), ({"tiling": True}, "tiling"), ({"enable_hr": True}, "enable_hr"),
    ({"subseed_strength": 0.3}, "subseed_strength"), ({"styles": ["noir"]}, "styles"),
    ({"script_name": "x/y/z plot"}, "script_name"), ({"bogus": 1}, "bogus"),
    ({"override_settings": {"sd_model_checkpoint": "builtin:tiny", "sd_vae": "x"}}, "override_settings.sd_vae"),
    ({"alwayson_scripts": {"controlnet": {"args": [unit(module="canny")]}}}, "alwayson_scripts.controlnet.args[0].module"),
    ({"alwayson_scripts": {"controlnet": {"args": [unit(model="None")]}}}, "alwayson_scripts.controlnet.args[0].model"),
    ({"alwayson_scripts": {"controlnet": {"args": [unit(image=None)]}}}, "alwayson_scripts.controlnet.args[0].image"),
    ({"alwayson_scripts": {"controlnet": {"args": [unit(loopback=True)]}}}, "alwayson_scripts.controlnet.args[0].loopback"),
    ({"alwayson_scripts": {"controlnet": {"args": [unit(weird=1)]}}}, "alwayson_scripts.controlnet.args[0].weird"),
    ({"alwayson_scripts": {"ADetailer": {"args": [{"ad_model": "face"}]}}}, "alwayson_scripts.ADetailer"),
    ({"prompt": "x <hypernet:h:1>"}, "prompt"), ({"width": 100}, "width"), ({"init_images": ["x"]}, "init_images"),
])
def test_fields_that_would_change_the_image_are_refused_by_name(extra: dict, field: str) -> None:
    with pytest.raises(tr.Unsupported) as err:
        tr.translate({**BASE, **extra}, "txt2img", None)
    assert err.value.field == field and err.value.fix


def test_neutral_values_and_harmless_fields_are_accepted() -> None:
    t = tr.translate({**BASE, "restore_faces": False, "tiling": False, "styles": [], "subseed": 123,
                      "subseed_strength": 0, "enable_hr": False, "hr_scale": 2, "save_images": True,
                      "do_not_save_grid": True, "s_noise": 1.0, "inpainting_fill": 1, "send_images": True,
                      "alwayson_scripts": {"controlnet": {"args": [unit(enabled=False)]}, "Soft Inpainting": {"args": []}}},
                     "txt2img", None)
    assert t.specs[0]["stages"][0]["controlnets"] == []  # a disabled unit is no unit


def test_model_comes_from_override_or_the_selected_checkpoint_and_is_required() -> None:
    body = {k: v for k, v in BASE.items() if k != "override_settings"}
    assert tr.translate(body, "txt2img", "builtin:tiny").model == "builtin:tiny"
    with pytest.raises(tr.Unsupported) as err:
        tr.translate(body, "txt2img", None)
    assert err.value.field == "override_settings.sd_model_checkpoint"


def test_lora_tags_leave_the_prompt_and_become_loras() -> None:
    t = tr.translate({**BASE, "prompt": "a wall, <lora:brick_v2:0.6> mossy <lora:grime>"}, "txt2img", None)
    assert t.specs[0]["prompt"] == "a wall, mossy"
    assert t.specs[0]["loras"] == [{"name": "brick_v2", "weight": 0.6}, {"name": "grime", "weight": 1.0}]
    off = tr.translate({**BASE, "prompt": "a wall <lora:grime>", "disable_extra_networks": True}, "txt2img", None)
    assert "loras" not in off.specs[0] and off.specs[0]["prompt"] == "a wall"


def test_random_seed_is_chosen_once_and_reported() -> None:
    t = tr.translate({**BASE, "seed": -1, "batch_size": 3}, "txt2img", None)
    assert t.seeds[1] == t.seeds[0] + 1 and t.seeds[2] == t.seeds[0] + 2 and 0 <= t.seeds[0] < 2**32


def test_controlnet_resize_modes_fit_the_job_size() -> None:
    wide = ramp(128, 64)  # 2:1 into 64x64
    wide[:, :, 1] = 0
    crop = images.fit_image(wide, 64, 64, "crop")
    assert crop.shape == (64, 64, 3) and 40 < crop[0, 0, 0] < 80  # the centre half kept: starts near 25% grey
    fill = images.fit_image(wide, 64, 64, "fill")
    assert fill.shape == (64, 64, 3)
    assert np.array_equal(fill[0, 10], fill[63, 10])  # padded above and below with one (median border) colour
    assert np.all(np.any(fill[20:44, 10] != fill[0, 10], axis=1))  # the image itself in the middle
    just = images.fit_image(wide, 64, 64, "just")
    assert just[0, 0, 0] < 10 and just[0, 63, 0] > 245  # the whole ramp, squeezed


def test_img2img_with_mask_becomes_inpaint_with_blur_invert_and_fill() -> None:
    src = np.zeros((64, 64, 3), np.uint8)
    src[:, :32] = (200, 30, 30)
    src[:, 32:] = (30, 30, 200)
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    body = {**BASE, "init_images": [b64(src)], "mask": b64(np.repeat(mask[:, :, None], 3, 2)), "denoising_strength": 0.6,
            "mask_blur": 2, "inpainting_fill": 0}
    t = tr.translate(body, "img2img", None)
    stage = JobSpec.model_validate(t.specs[0]).stages[0]
    assert stage.type == "inpaint" and stage.strength == 0.6
    m = t.images["mask"][:, :, 0]
    assert m[0, 0] == 0 and m[0, 63] == 255 and 0 < m[0, 32] < 255  # blurred edge
    assert tuple(t.images["init"][10, 60]) != (30, 30, 200)  # "fill": the repainted side starts as its surroundings
    assert tuple(t.images["init"][10, 5]) == (200, 30, 30)  # kept side untouched
    inverted = tr.translate({**body, "inpainting_mask_invert": 1, "mask_blur": 0}, "img2img", None)
    assert inverted.images["mask"][0, 0, 0] == 255 and inverted.images["mask"][0, 63, 0] == 0
    for extra, field in (({"inpainting_fill": 2}, "inpainting_fill"), ({"inpaint_full_res": True}, "inpaint_full_res"),
                         ({"resize_mode": 3}, "resize_mode"), ({"init_images": [b64(src), b64(src)]}, "init_images")):
        with pytest.raises(tr.Unsupported) as err:
            tr.translate({**body, **extra}, "img2img", None)
        assert err.value.field == field


def test_alpha_masks_and_jpeg_init_images_are_read() -> None:
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:, 32:, 3] = 255
    rgba[:, :, :3] = 255
    src = ramp(64, 64)
    t = tr.translate({**BASE, "init_images": [b64(src, "JPEG", prefix=False)], "mask": b64(rgba), "mask_blur": 0,
                      "inpainting_fill": 1}, "img2img", None)
    assert t.images["mask"][0, 0, 0] == 0 and t.images["mask"][0, 63, 0] == 255  # transparent = keep
    with pytest.raises(tr.Unsupported) as err:
        tr.translate({**BASE, "init_images": ["not base64 at all!"]}, "img2img", None)
    assert err.value.field == "init_images[0]"


def test_info_has_every_field_a1111_clients_read() -> None:
    t = tr.translate({**BASE, "batch_size": 2}, "txt2img", None)
    info = answer.info(t, BASE, [5, 6], "scenecast test")
    assert info["all_seeds"] == [5, 6] and info["sampler_name"] == "Euler a" and len(info["infotexts"]) == 2
    assert "Steps: 3, Sampler: Euler a, CFG scale: 6.5, Seed: 6, Size: 64x64, Model: builtin:tiny" in info["infotexts"][1]
    echo = answer.echo_parameters({**BASE, "init_images": ["AAAA"], "alwayson_scripts": {"controlnet": {"args": [unit()]}}})
    assert echo["init_images"] is None and echo["alwayson_scripts"]["controlnet"]["args"][0]["image"] is None
