"""A1111 answers: the ``info`` object, the infotext and the echoed ``parameters`` for a translated request."""

from __future__ import annotations

import base64
import json
from typing import Any

from .sdapi_translate import Translated

def infotext(t: Translated, spec: dict[str, Any], seed: int) -> str:
    """A1111's one-image parameters text (what its PNG ``parameters`` chunk and ``infotexts`` hold)."""
    fields = [("Steps", spec["steps"]), ("Sampler", t.sampler_name), ("CFG scale", f"{spec['guidance']:g}"),
              ("Seed", seed), ("Size", f"{spec['width']}x{spec['height']}"), ("Model", t.model)]
    stage = spec["stages"][0]
    if stage["type"] != "generate":
        fields.append(("Denoising strength", f"{stage['strength']:g}"))
    for i, u in enumerate(stage["controlnets"]):
        fields.append((f"ControlNet {i}", json.dumps(
            f"Module: none, Model: {u['model']}, Weight: {u['weight']:g}, "
            f"Guidance Start: {u['start']:g}, Guidance End: {u['end']:g}, Control Mode: {u['mode']}")))
    fields.append(("Version", "scenecast"))
    lines = [t.prompt]
    if t.negative_prompt:
        lines.append(f"Negative prompt: {t.negative_prompt}")
    lines.append(", ".join(f"{k}: {v}" for k, v in fields))
    return "\n".join(lines)


def info(t: Translated, body: dict[str, Any], seeds_done: list[int], version: str) -> dict[str, Any]:
    """The ``info`` object (sent JSON-encoded as a string, as A1111 does) for the images made."""
    spec = t.specs[0]
    stage = spec["stages"][0]
    texts = [infotext(t, spec, s) for s in seeds_done]
    return {
        "prompt": t.prompt, "all_prompts": [t.prompt] * len(seeds_done), "negative_prompt": t.negative_prompt,
        "all_negative_prompts": [t.negative_prompt] * len(seeds_done), "seed": seeds_done[0] if seeds_done else t.seeds[0],
        "all_seeds": seeds_done, "subseed": -1, "all_subseeds": [-1] * len(seeds_done), "subseed_strength": 0.0,
        "width": spec["width"], "height": spec["height"], "sampler_name": t.sampler_name, "cfg_scale": spec["guidance"],
        "steps": spec["steps"], "batch_size": body.get("batch_size") or 1, "restore_faces": False,
        "face_restoration_model": None, "sd_model_name": t.model, "sd_model_hash": "", "sd_vae_name": None,
        "sd_vae_hash": None, "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": stage.get("strength"), "extra_generation_params": {}, "index_of_first_image": 0,
        "infotexts": texts, "styles": [], "job_timestamp": "", "clip_skip": 1,
        "is_using_inpainting_conditioning": False, "version": version,
    }


def echo_parameters(body: dict[str, Any]) -> dict[str, Any]:
    """The request as A1111 echoes it in ``parameters``: images left out (init_images and mask as null)."""
    out = {k: v for k, v in body.items() if k not in ("init_images", "mask")}
    if "init_images" in body:
        out["init_images"] = None
    if "mask" in body:
        out["mask"] = None
    scripts = body.get("alwayson_scripts")
    if isinstance(scripts, dict):
        out["alwayson_scripts"] = {
            name: ({**value, "args": [{k: (None if k in ("image", "input_image") else v) for k, v in u.items()}
                                      if isinstance(u, dict) else u for u in value.get("args", [])]}
                   if isinstance(value, dict) and isinstance(value.get("args"), list) else value)
            for name, value in scripts.items()}
    return out


def encode_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

