"""AUTOMATIC1111 / Forge request bodies -> Scenecast job specs (answers: ``sdapi_answer``).

Pure translation (no FastAPI), so every mapping is testable without a server. The A1111 wire format
carries images as base64 in JSON; ``sdapi_images`` turns them into H x W x 3 uint8 arrays at the job's
width x height (resized the way the request's ``resize_mode`` says), ready to be sent through the same
image path as ``POST /v1/jobs``.

The rule for fields: a field we map is mapped; a field that cannot change the image (saving, grids,
UI flags) is accepted; a field that would change the image in a way we do not reproduce is refused
with a :class:`Unsupported` naming it, unless it holds its neutral value. Nothing that changes pixels
is dropped silently. docs/a1111.md lists every field.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..spec import MAX_CONTROLNETS
from .sdapi_images import Unsupported, blur_mask, decode_image, fill_masked, fit_image

__all__ = ["Translated", "Unsupported", "translate", "scheduler_for", "model_of", "prompt_and_loras", "SAMPLER_TITLES"]

SEED_MAX = 2**32 - 1
#: One A1111 request makes batch_size x n_iter images; each is one job in our queue.
MAX_IMAGES_PER_REQUEST = 16


# -- samplers ----------------------------------------------------------------------------------------------
#: A1111 sampler name (and its aliases, lower case) -> our scheduler; "karras" variants in SCHEDULE_VARIANTS.
SAMPLERS: dict[str, str] = {
    "euler a": "euler_a", "k_euler_a": "euler_a", "k_euler_ancestral": "euler_a", "euler_ancestral": "euler_a",
    "euler": "euler", "k_euler": "euler",
    "dpm++ 2m": "dpmpp_2m", "k_dpmpp_2m": "dpmpp_2m", "dpmpp_2m": "dpmpp_2m",
    "dpm++ 2m karras": "dpmpp_2m_karras", "k_dpmpp_2m_ka": "dpmpp_2m_karras",
    "ddim": "ddim",
    "unipc": "unipc", "uni_pc": "unipc",
    "lcm": "lcm", "k_lcm": "lcm",
}
#: Our scheduler -> the name A1111 shows (for /sdapi/v1/samplers and the infotext).
SAMPLER_TITLES = {"euler_a": "Euler a", "euler": "Euler", "dpmpp_2m": "DPM++ 2M", "dpmpp_2m_karras": "DPM++ 2M Karras",
                  "ddim": "DDIM", "unipc": "UniPC", "lcm": "LCM"}
#: A1111 >= 1.9 sends the noise schedule separately. "automatic" keeps the sampler's own schedule, which for
#: DPM++ 2M is Karras in A1111 1.9+; only DPM++ 2M has a Karras variant here.
NEUTRAL_SCHEDULES = {"", "automatic", "normal"}


def scheduler_for(sampler: Any, schedule: Any) -> str:
    """``sampler_name`` + ``scheduler`` (A1111 names, any case) -> our scheduler, or Unsupported."""
    name = "euler a" if sampler in (None, "") else str(sampler).strip().lower()
    ours = SAMPLERS.get(name)
    if ours is None:
        raise Unsupported("sampler_name", f"sampler {sampler!r} is not available here",
                          f"use one of {', '.join(sorted(set(SAMPLER_TITLES.values())))} (GET /sdapi/v1/samplers)")
    sched = "" if schedule is None else str(schedule).strip().lower()
    if sched == "karras" and ours == "dpmpp_2m":
        return "dpmpp_2m_karras"
    if sched == "automatic" and ours == "dpmpp_2m":
        return "dpmpp_2m_karras"  # A1111 1.9+: DPM++ 2M's automatic schedule is Karras
    if sched in NEUTRAL_SCHEDULES or (sched == "karras" and ours == "dpmpp_2m_karras"):
        return ours
    raise Unsupported("scheduler", f"schedule {schedule!r} is not available with sampler {sampler!r}",
                      "send 'Automatic' (or 'Karras' with DPM++ 2M)")


# -- the request -------------------------------------------------------------------------------------------
#: Fields accepted because they cannot change the pixels (saving, echoing, UI state, task ids).
HARMLESS = {
    "do_not_save_samples", "do_not_save_grid", "save_images", "send_images", "override_settings_restore_afterwards",
    "comments", "force_task_id", "sampler_index", "include_init_images", "image_cfg_scale", "disable_extra_networks",
    "firstphase_width", "firstphase_height", "mask_round",
    "subseed",  # only read when subseed_strength > 0, which is refused
}
#: Fields that change the image unless they hold one of these neutral values.
NEUTRAL: dict[str, tuple[Any, ...] | None] = {
    "styles": (None, []), "subseed_strength": (None, 0, 0.0),
    "seed_resize_from_h": (None, -1, 0), "seed_resize_from_w": (None, -1, 0), "restore_faces": (None, False),
    "tiling": (None, False), "eta": (None,), "s_min_uncond": (None, 0, 0.0), "s_churn": (None, 0, 0.0),
    "s_tmax": (None, 0, 0.0), "s_tmin": (None, 0, 0.0), "s_noise": (None, 1, 1.0), "refiner_checkpoint": (None, "", "None"),
    "refiner_switch_at": (None,), "enable_hr": (None, False), "script_name": (None, "", "None"), "script_args": (None, []),
    "infotext": (None, ""), "firstpass_image": (None, ""), "latent_mask": (None, ""), "initial_noise_multiplier": (None, 1, 1.0),
    "inpaint_full_res": (None, False, 0), "distilled_cfg_scale": (None,),
    "hr_scale": None, "hr_upscaler": None, "hr_second_pass_steps": None, "hr_resize_x": None, "hr_resize_y": None,
    "hr_checkpoint_name": None, "hr_sampler_name": None, "hr_scheduler": None, "hr_prompt": None,
    "hr_negative_prompt": None, "hr_cfg": None, "hr_distilled_cfg": None, "hr_additional_modules": None,
}
"""``None`` as the tuple: only meaningful with ``enable_hr``, so any value is fine while the hires fix is off."""
MAPPED_TXT2IMG = {"prompt", "negative_prompt", "seed", "sampler_name", "scheduler", "batch_size", "n_iter", "steps",
                  "cfg_scale", "width", "height", "denoising_strength", "override_settings", "alwayson_scripts"}
MAPPED_IMG2IMG = MAPPED_TXT2IMG | {"init_images", "resize_mode", "mask", "mask_blur", "mask_blur_x", "mask_blur_y",
                                   "inpainting_fill", "inpainting_mask_invert", "inpaint_full_res_padding"}
#: img2img fields we do not map, checked on img2img only (see NEUTRAL for their neutral values).
IMG2IMG_ONLY_NEUTRAL = {"inpaint_full_res": None, "latent_mask": None, "initial_noise_multiplier": None}
RESIZE_MODES = {0: "just", 1: "crop", 2: "fill"}
CN_RESIZE = {"just resize": "just", "crop and resize": "crop", "resize and fill": "fill",
             "inner fit (scale to fit)": "crop", "outer fit (shrink to fit)": "fill", "0": "just", "1": "crop", "2": "fill"}
CN_MODES = {"balanced": "balanced", "my prompt is more important": "prompt", "controlnet is more important": "control",
            "0": "balanced", "1": "prompt", "2": "control"}
CN_NO_PREPROCESSOR = {"none", ""}
CN_HARMLESS = {"low_vram", "processor_res", "threshold_a", "threshold_b", "pixel_perfect", "is_ui", "save_detected_map",
               "input_mode", "batch_images", "output_dir", "loopback", "hr_option", "advanced_weighting", "animatediff_batch",
               "batch_image_files", "batch_keyframe_idx", "batch_mask_dir", "union_control_type", "ipadapter_input",
               "effective_region_mask", "use_preview_as_input", "inpaint_crop_input_image", "mask", "mask_image"}
CN_NEUTRAL: dict[str, tuple[Any, ...]] = {"use_preview_as_input": (None, False), "ipadapter_input": (None,),
                                          "effective_region_mask": (None, ""), "mask": (None, ""), "mask_image": (None, ""),
                                          "loopback": (None, False), "advanced_weighting": (None,),
                                          "inpaint_crop_input_image": (None, False, True),
                                          "batch_images": (None, "", []), "input_mode": (None, "simple", "SIMPLE", 0)}
CN_TYPES = (("depth", "depth"), ("normal", "normal"), ("canny", "canny"), ("lineart", "lineart"),
            ("softedge", "edges"), ("hed", "edges"), ("edges", "edges"), ("seg", "segmentation"))
_LORA = re.compile(r"<(lora|lyco|hypernet):([^:>]+)(?::([^:>]*))?(?::[^>]*)?>", re.IGNORECASE)
_HASH_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]{6,}\]$")


@dataclass
class Translated:
    """One A1111 request as jobs: ``specs`` (one per image; validated by the caller) and their input images."""

    specs: list[dict[str, Any]]
    images: dict[str, np.ndarray]  # key -> H x W x 3 uint8 at the job's size
    hashes: dict[str, str]  # key -> sha256 of the image bytes received
    seeds: list[int]
    model: str
    sampler_name: str
    names: dict[str, str] = field(default_factory=dict)  # spec field path -> A1111 field path, for errors
    prompt: str = ""
    negative_prompt: str = ""


def _number(body: dict[str, Any], key: str, default: Any, kind: type) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Unsupported(key, f"expected a number, got {value!r:.60}", f"send {key} as a JSON number")
    if kind is int and float(value) != int(value):
        raise Unsupported(key, f"expected a whole number, got {value!r}", f"send {key} as an integer")
    return kind(value)


def _check_fields(body: dict[str, Any], mapped: set[str], where: str = "") -> None:
    hires = bool(body.get("enable_hr"))
    for key, value in body.items():
        name = where + key
        if key in mapped or key in HARMLESS:
            continue
        if key not in NEUTRAL:
            raise Unsupported(name, "unknown field", "remove it; docs/a1111.md lists the fields this server takes")
        neutral = NEUTRAL[key]
        if neutral is None:
            if hires:
                raise Unsupported("enable_hr", "the hires fix is not available here",
                                  "send enable_hr: false and run an img2img pass at the larger size instead")
            continue
        if not any(value == n for n in neutral):
            raise Unsupported(name, f"{value!r:.60} would change the image in a way this server does not reproduce",
                              f"leave {key} out (or at its default) to use this server")


def model_of(body: dict[str, Any], current: str | None) -> str:
    """The checkpoint: ``override_settings.sd_model_checkpoint`` (title or name; a " [hash]" suffix is dropped),
    else the server's current one (``POST /sdapi/v1/options``)."""
    overrides = body.get("override_settings") or {}
    if not isinstance(overrides, dict):
        raise Unsupported("override_settings", "expected an object", "send override_settings as a JSON object")
    for key in overrides:
        if key not in ("sd_model_checkpoint", "CLIP_stop_at_last_layers"):
            raise Unsupported(f"override_settings.{key}", "this setting cannot be overridden here",
                              "leave it out; only sd_model_checkpoint is supported")
    if overrides.get("CLIP_stop_at_last_layers") not in (None, 1):
        raise Unsupported("override_settings.CLIP_stop_at_last_layers", "clip skip is not available here",
                          "leave it out (or 1)")
    name = overrides.get("sd_model_checkpoint") or current
    if not name:
        raise Unsupported("override_settings.sd_model_checkpoint", "no checkpoint is selected on this server",
                          "name one from GET /sdapi/v1/sd-models in override_settings.sd_model_checkpoint, or"
                          " POST /sdapi/v1/options {\"sd_model_checkpoint\": ...} once")
    return _HASH_SUFFIX.sub("", str(name))


def prompt_and_loras(prompt: str, use_networks: bool) -> tuple[str, list[dict[str, Any]]]:
    """Take ``<lora:name:weight>`` (and ``<lyco:...>``) out of the prompt as our LoRA references, as A1111 does."""
    loras: list[dict[str, Any]] = []

    def take(m: re.Match[str]) -> str:
        kind, name, weight = m.group(1).lower(), m.group(2).strip(), m.group(3)
        if kind == "hypernet":
            raise Unsupported("prompt", f"hypernetwork <{m.group(0)[1:-1]}> is not available here",
                              "remove it from the prompt; LoRAs (<lora:name:weight>) are")
        if use_networks:
            try:
                w = 1.0 if weight in (None, "") else float(weight)
            except ValueError as exc:
                raise Unsupported("prompt", f"LoRA weight {weight!r} is not a number", "write <lora:name:0.8>") from exc
            loras.append({"name": name, "weight": w})
        return ""

    text = _LORA.sub(take, prompt)
    return re.sub(r"[ \t]{2,}", " ", text).strip(" ,"), loras


def _unit_type(model: str) -> str:
    low = model.lower()
    return next((ours for key, ours in CN_TYPES if key in low), "other")


def controlnet_units(body: dict[str, Any], width: int, height: int, images: dict[str, np.ndarray],
                     hashes: dict[str, str], names: dict[str, str], stage_path: str) -> list[dict[str, Any]]:
    """``alwayson_scripts.controlnet.args`` -> our ControlNet units (images added to ``images``)."""
    scripts = body.get("alwayson_scripts") or {}
    if not isinstance(scripts, dict):
        raise Unsupported("alwayson_scripts", "expected an object", "send alwayson_scripts as a JSON object")
    units: list[dict[str, Any]] = []
    for script, value in scripts.items():
        args = value.get("args", []) if isinstance(value, dict) else value
        if script.lower() != "controlnet":
            if args in ([], None):
                continue
            raise Unsupported(f"alwayson_scripts.{script}", "this script is not available here",
                              "only the ControlNet script (alwayson_scripts.controlnet) is supported")
        if not isinstance(args, list):
            raise Unsupported(f"alwayson_scripts.{script}.args", "expected a list of ControlNet units",
                              "send args as a list of unit objects")
        for i, unit in enumerate(args):
            where = f"alwayson_scripts.{script}.args[{i}]"
            if not isinstance(unit, dict):
                raise Unsupported(where, "expected a unit object (positional units are not supported)",
                                  "send each unit as an object with image, model, weight ...")
            if unit.get("enabled", True) is False:
                continue
            units.append(_unit(unit, where, width, height, images, hashes, names, f"{stage_path}.controlnets[{len(units)}]"))
    if len(units) > MAX_CONTROLNETS:
        raise Unsupported("alwayson_scripts.controlnet.args", f"{len(units)} enabled units, more than {MAX_CONTROLNETS}",
                          f"send at most {MAX_CONTROLNETS} enabled units")
    return units


def _unit(unit: dict[str, Any], where: str, width: int, height: int, images: dict[str, np.ndarray],
          hashes: dict[str, str], names: dict[str, str], path: str) -> dict[str, Any]:
    known = {"enabled", "module", "model", "weight", "image", "input_image", "resize_mode", "guidance_start",
             "guidance_end", "control_mode", "guessmode"}
    for key, value in unit.items():
        if key in known:
            continue
        if key not in CN_HARMLESS:
            raise Unsupported(f"{where}.{key}", "unknown ControlNet unit field",
                              "remove it; docs/a1111.md lists the unit fields this server takes")
        if key in CN_NEUTRAL and value not in CN_NEUTRAL[key]:
            raise Unsupported(f"{where}.{key}", f"{value!r:.60} is not available here", f"leave {key} out")
    module = str(unit.get("module") or "none").strip().lower()
    if module not in CN_NO_PREPROCESSOR:
        raise Unsupported(f"{where}.module", f"preprocessor {unit.get('module')!r} is not run on this server",
                          "send the finished control map (depth, normals, edges ...) as the image with module 'none'")
    model = _HASH_SUFFIX.sub("", str(unit.get("model") or "")).strip()
    if model.lower() in ("", "none"):
        raise Unsupported(f"{where}.model", "the unit names no ControlNet model", "name one from GET /controlnet/model_list")
    raw = unit.get("image", unit.get("input_image"))
    if isinstance(raw, dict):  # {"image": b64, "mask": b64 | null}
        if raw.get("mask") not in (None, ""):
            raise Unsupported(f"{where}.image.mask", "unit masks are not available here", "send the image alone")
        raw = raw.get("image")
    if raw in (None, ""):
        raise Unsupported(f"{where}.image", "the unit has no control image",
                          "send the control map as base64 (this server runs no preprocessors on the init image)")
    img, digest = decode_image(raw, f"{where}.image")
    resize = CN_RESIZE.get(str(unit.get("resize_mode", "Crop and Resize")).strip().lower())
    if resize is None:
        raise Unsupported(f"{where}.resize_mode", f"{unit.get('resize_mode')!r} is not a ControlNet resize mode",
                          "send 'Just Resize', 'Crop and Resize' or 'Resize and Fill'")
    mode_value = unit.get("control_mode", "Balanced")
    if unit.get("guessmode") is True:
        mode_value = "ControlNet is more important"
    mode = CN_MODES.get(str(mode_value).strip().lower())
    if mode is None:
        raise Unsupported(f"{where}.control_mode", f"{mode_value!r} is not a control mode",
                          "send 'Balanced', 'My prompt is more important' or 'ControlNet is more important'")
    key = f"cn{len([k for k in images if k.startswith('cn')])}"
    images[key] = fit_image(img, width, height, resize)
    hashes[key] = digest
    for ours, theirs in (("weight", "weight"), ("start", "guidance_start"), ("end", "guidance_end"),
                         ("model", "model"), ("image", "image"), ("mode", "control_mode")):
        names[f"{path}.{ours}"] = f"{where}.{theirs}"
    names[path] = where
    return {"image": key, "type": _unit_type(model), "model": model,
            "weight": _number(unit, "weight", 1.0, float), "start": _number(unit, "guidance_start", 0.0, float),
            "end": _number(unit, "guidance_end", 1.0, float), "mode": mode}


def translate(body: Any, kind: str, current_model: str | None) -> Translated:
    """One txt2img / img2img request body -> jobs; raises Unsupported naming the first field it cannot honour."""
    if not isinstance(body, dict):
        raise Unsupported("body", "the request must be a JSON object", "send the parameters as a JSON object")
    if kind == "txt2img":
        for key in ("init_images", "mask"):
            if body.get(key) not in (None, "", []):
                raise Unsupported(key, "txt2img takes no input image", "send it to /sdapi/v1/img2img")
    # img2img-only fields cannot change a txt2img image (A1111 ignores them there; clients send them alike).
    _check_fields(body, MAPPED_IMG2IMG | IMG2IMG_ONLY_NEUTRAL.keys() if kind == "txt2img" else MAPPED_IMG2IMG)
    width, height = _number(body, "width", 512, int), _number(body, "height", 512, int)
    if width % 8 or height % 8:
        raise Unsupported("width" if width % 8 else "height", f"{width}x{height} is not a multiple of 8",
                          "send a width and height that are multiples of 8 (A1111 rounds them down)")
    batch, n_iter = _number(body, "batch_size", 1, int), _number(body, "n_iter", 1, int)
    if batch < 1 or n_iter < 1 or batch * n_iter > MAX_IMAGES_PER_REQUEST:
        raise Unsupported("batch_size", f"batch_size x n_iter = {batch * n_iter}, outside 1..{MAX_IMAGES_PER_REQUEST}",
                          f"ask for at most {MAX_IMAGES_PER_REQUEST} images per request")
    seed = _number(body, "seed", -1, int)
    if seed > SEED_MAX:
        raise Unsupported("seed", f"{seed} is larger than {SEED_MAX}", "send a seed in 0..4294967295, or -1 for a random one")
    if seed < 0:
        seed = secrets.randbelow(SEED_MAX - MAX_IMAGES_PER_REQUEST)
    seeds = [(seed + i) % (SEED_MAX + 1) for i in range(batch * n_iter)]
    scheduler = scheduler_for(body.get("sampler_name") or body.get("sampler_index"), body.get("scheduler"))
    prompt_in, negative = body.get("prompt") or "", body.get("negative_prompt") or ""
    if not isinstance(prompt_in, str) or not isinstance(negative, str):
        raise Unsupported("prompt" if not isinstance(prompt_in, str) else "negative_prompt", "expected text", "send a string")
    prompt, loras = prompt_and_loras(prompt_in, not body.get("disable_extra_networks"))
    negative, neg_loras = prompt_and_loras(negative, False)
    model = model_of(body, current_model)
    names: dict[str, str] = {"width": "width", "height": "height", "steps": "steps", "guidance": "cfg_scale",
                             "seed": "seed", "prompt": "prompt", "negative_prompt": "negative_prompt",
                             "model": "override_settings.sd_model_checkpoint", "scheduler": "sampler_name",
                             "loras": "prompt"}
    images: dict[str, np.ndarray] = {}
    hashes: dict[str, str] = {}
    stage: dict[str, Any] = {"type": "generate"}
    if kind == "img2img":
        stage = _img2img_stage(body, width, height, images, hashes, names)
    stage["controlnets"] = controlnet_units(body, width, height, images, hashes, names, "stages[0]")
    common: dict[str, Any] = {
        "model": model, "prompt": prompt, "negative_prompt": negative, "width": width, "height": height,
        "steps": _number(body, "steps", 20, int), "guidance": _number(body, "cfg_scale", 7.0, float),
        "scheduler": scheduler, "name": "a1111 " + kind,
    }
    if loras:
        common["loras"] = loras
    specs = [{**common, "seed": s, "stages": [stage]} for s in seeds]
    return Translated(specs=specs, images=images, hashes=hashes, seeds=seeds, model=model,
                      sampler_name=SAMPLER_TITLES[scheduler], names=names, prompt=prompt_in, negative_prompt=negative)


def _img2img_stage(body: dict[str, Any], width: int, height: int, images: dict[str, np.ndarray],
                   hashes: dict[str, str], names: dict[str, str]) -> dict[str, Any]:
    init = body.get("init_images")
    if not isinstance(init, list) or not init:
        raise Unsupported("init_images", "img2img needs one init image", "send init_images: [<base64 image>]")
    if len(init) > 1:
        raise Unsupported("init_images", f"{len(init)} init images; this server takes one per request",
                          "send one request per init image")
    resize_value = body.get("resize_mode", 0)
    resize = RESIZE_MODES.get(resize_value) if isinstance(resize_value, int) and not isinstance(resize_value, bool) else None
    if resize is None:
        raise Unsupported("resize_mode", f"{resize_value!r} is not available here (3, latent upscale, is not)",
                          "send 0 (just resize), 1 (crop and resize) or 2 (resize and fill)")
    image, digest = decode_image(init[0], "init_images[0]")
    image = fit_image(image, width, height, resize, border="stretch")
    strength = _number(body, "denoising_strength", 0.75, float)
    names.update({"stages[0].strength": "denoising_strength", "stages[0].image": "init_images[0]",
                  "stages[0].mask": "mask"})
    if body.get("mask") in (None, ""):
        images["init"], hashes["init"] = image, digest
        return {"type": "img2img", "image": "init", "strength": strength}
    mask, mask_digest = decode_image(body["mask"], "mask", grey=True)
    mask = fit_image(mask, width, height, resize, border="stretch")
    if body.get("inpainting_mask_invert") not in (None, 0, False):
        if body.get("inpainting_mask_invert") not in (1, True):
            raise Unsupported("inpainting_mask_invert", "expected 0 or 1", "send 0 (repaint white) or 1 (repaint black)")
        mask = 255 - mask
    blur = _number(body, "mask_blur", None, int) if body.get("mask_blur") is not None else None
    blur_x = blur if blur is not None else _number(body, "mask_blur_x", 4, int)
    blur_y = blur if blur is not None else _number(body, "mask_blur_y", 4, int)
    mask = blur_mask(mask, blur_x, blur_y)
    fill = body.get("inpainting_fill", 0)
    if fill == 0:
        image = fill_masked(image, mask)
    elif fill != 1:
        raise Unsupported("inpainting_fill", f"masked content {fill!r} is not available here",
                          "send 0 (fill) or 1 (original); latent noise/nothing (2, 3) are not")
    images["init"], hashes["init"] = image, digest
    images["mask"], hashes["mask"] = mask, mask_digest
    return {"type": "inpaint", "image": "init", "mask": "mask", "strength": strength}
