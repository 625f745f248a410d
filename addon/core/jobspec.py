"""Protocol-1 job specs from the add-on's settings and presets (backend/spec.py is the definition).

The backend validates every spec; this module builds specs that pass and catches what the user can
fix in the panel (size, ranges, unknown types) before anything is sent, with the fix in the message.

Presets (``presets/<name>.json``) are partial specs: stages with their ControlNet units, steps,
guidance, scheduler, a negative prompt, and a ``description``. How UI values merge into one:

- ``model``, ``prompt``, ``seed``, ``width``, ``height``, ``preview_every`` always come from the caller.
- ``negative_prompt``, ``steps``, ``guidance``, ``scheduler``: the caller's value when it is not None,
  else the preset's, else the protocol default. Per-stage overrides in the preset stay as they are.
- ``units`` tune the ControlNets of the preset's first stage that has any (its main stage): a unit of a
  type the stage already has sets that ControlNet's fields (the keys the unit gives); a unit of a new
  type is added. The preset's other ControlNets and later stages are kept. Without units, the preset's
  ControlNets run as written. Without a preset, one ``generate`` stage carries the units.

Image keys are the conventional pass names — "depth", "normal", "edges", "segmentation", "color",
"mask" — so a unit without an ``image`` uses the key of its type.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ScenecastError

PROTOCOL = 1
MIN_SIDE, MAX_SIDE, SIDE_MULTIPLE = 64, 2048, 8
MAX_STEPS = 150
MAX_CONTROLNETS = 4
UNIT_TYPES = ("depth", "normal", "edges", "canny", "lineart", "segmentation", "other")
UNIT_MODES = ("balanced", "prompt", "control")
SCHEDULERS = ("euler_a", "euler", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "unipc", "lcm")
STAGE_TYPES = ("generate", "img2img", "inpaint", "texture_sync")
#: Image key a unit of each type reads when it names none.
DEFAULT_IMAGE_KEY = {"depth": "depth", "normal": "normal", "edges": "edges", "canny": "edges",
                     "lineart": "edges", "segmentation": "segmentation"}  # fmt: skip
DEFAULTS: dict[str, Any] = {"negative_prompt": "", "steps": 20, "guidance": 7.5}
JOB_FIELDS = ("protocol", "model", "prompt", "negative_prompt", "seed", "steps", "guidance", "scheduler",
              "loras", "vae", "width", "height", "preview_every", "stages", "name")  # fmt: skip
UNIT_FIELDS = ("image", "type", "model", "weight", "start", "end", "mode")
_IMAGE_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


class SpecError(ScenecastError, ValueError):
    """A job setting that cannot work; also a ValueError, so plain validation code can catch it."""

    default_fix = "change that setting in the Scenecast panel or the call (docs/spec.md lists the allowed values)"


def validate_size(width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` as ints when both are multiples of 8 within 64..2048; SpecError otherwise."""
    out = []
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise SpecError(f"{name} must be a whole number of pixels, got {value!r}", f"set {name} to e.g. 512")
        v = int(value)
        if not MIN_SIDE <= v <= MAX_SIDE or v % SIDE_MULTIPLE:
            nearest = min(MAX_SIDE, max(MIN_SIDE, SIDE_MULTIPLE * int(v / SIDE_MULTIPLE + 0.5)))
            raise SpecError(
                f"{name} {v} is not a multiple of {SIDE_MULTIPLE} between {MIN_SIDE} and {MAX_SIDE}",
                f"set {name} to {nearest}",
            )
        out.append(v)
    return out[0], out[1]


def build_job_spec(
    *,
    model: str,
    prompt: str,
    negative_prompt: str | None = None,
    seed: int = 0,
    steps: int | None = None,
    guidance: float | None = None,
    width: int = 512,
    height: int = 512,
    units: Sequence[Mapping[str, Any]] = (),
    preset: Mapping[str, Any] | str | None = None,
    scheduler: str | None = None,
    preview_every: int = 0,
    name: str | None = None,
    reference: Sequence[Mapping[str, Any]] = (),
    loras: Sequence[Mapping[str, Any]] | None = None,
    vae: str | None = None,
) -> dict[str, Any]:
    """A protocol-1 job spec dict (JSON-ready); see the module doc for how ``preset`` and ``units`` merge.

    ``preset``: a partial spec (dict) or the name of a preset file (``load_preset``). ``units``:
    ControlNet units ``{type, image?, model?, weight?, start?, end?, mode?}``. ``reference``: style/
    reference images ``{image, weight?, start?, end?, model?}`` (IP-Adapter), given to every stage that
    has none of its own, so a multi-stage job keeps one look throughout.
    """
    if not isinstance(model, str) or not model.strip():
        raise SpecError("no model is set", "choose a model in the Scenecast panel (or builtin:tiny to test)")
    if not isinstance(prompt, str):
        raise SpecError(f"the prompt must be text, got {type(prompt).__name__}", "pass the prompt as a str")
    width, height = validate_size(width, height)
    base = load_preset(preset) if isinstance(preset, str) else copy.deepcopy(dict(preset or {}))
    base.pop("description", None)
    unknown = sorted(set(base) - set(JOB_FIELDS))
    if unknown:
        raise SpecError(
            f"the preset has fields a job spec does not: {', '.join(unknown)}",
            "fix the preset file (docs/spec.md lists the fields)",
        )

    spec: dict[str, Any] = dict(base)
    spec.update(protocol=PROTOCOL, model=model.strip(), prompt=prompt, seed=_int_in("seed", seed, 0, 2**32 - 1),
                width=width, height=height, preview_every=_int_in("preview_every", preview_every, 0, MAX_STEPS))
    for key, value in (("negative_prompt", negative_prompt), ("steps", steps), ("guidance", guidance),
                       ("scheduler", scheduler)):  # fmt: skip
        if value is not None:
            spec[key] = value
        elif key not in spec and key in DEFAULTS:
            spec[key] = DEFAULTS[key]
    if name is not None:
        spec["name"] = name
    if loras:  # the caller's LoRAs replace the preset's
        spec["loras"] = [_lora(lora, i) for i, lora in enumerate(loras)]
    # -- VAE (issue 13): the caller's VAE replaces the preset's; empty/None keeps it (or the model's own)
    if vae is not None and not isinstance(vae, str):
        raise SpecError(f"the VAE must be a model id (text), got {type(vae).__name__}", "pass vae= as a str")
    if vae and vae.strip():
        spec["vae"] = vae.strip()
    _check_common(spec, "the job")

    new_units = [_unit(u, i) for i, u in enumerate(units)]
    stages = [dict(s) for s in spec.get("stages") or []]
    if not stages:
        stages = [{"type": "generate", "controlnets": new_units}]
    elif new_units:
        main = next((i for i, s in enumerate(stages) if s.get("controlnets")), 0)
        stages[main]["controlnets"] = _merge_units(stages[main].get("controlnets") or [], new_units)
    refs = [reference_entry(r, i) for i, r in enumerate(reference)]  # -- reference images
    if len(refs) > MAX_REFERENCES:
        raise SpecError(f"{len(refs)} reference images; at most {MAX_REFERENCES} run together", "remove some")
    for stage in stages:
        if refs and not stage.get("reference"):
            stage["reference"] = [dict(r) for r in refs]
    for i, stage in enumerate(stages):
        stages[i] = _check_stage(stage, i, first=i == 0)
    spec["stages"] = stages
    return spec


def image_keys(spec: Mapping[str, Any]) -> set[str]:
    """Every image key a spec refers to (ControlNet images, img2img/inpaint images and masks)."""
    keys: set[str] = set()
    for stage in spec.get("stages") or []:
        keys.update(u["image"] for u in stage.get("controlnets") or [] if u.get("image"))
        keys.update(r["image"] for r in stage.get("reference") or [] if r.get("image"))
        keys.update(stage[k] for k in ("image", "mask", "correspondence") if stage.get(k))
        for view in stage.get("views") or []:  # texture_sync
            keys.update(u["image"] for u in view.get("controlnets") or [] if u.get("image"))
    return keys


#: The user's own presets folder (``set_user_preset_dir``; the add-on sets it when it registers).
_user_preset_dir: list[Path] = []


def set_user_preset_dir(folder: str | Path | None) -> None:
    """Where the user's own presets live (outside the installed extension, which an update replaces)."""
    _user_preset_dir[:] = [Path(folder)] if folder else []


def user_preset_dir() -> Path | None:
    return _user_preset_dir[0] if _user_preset_dir else None


def shipped_preset_dirs() -> list[Path]:
    """``<add-on>/presets`` when installed, the checkout's ``presets/`` in development."""
    package = Path(__file__).resolve().parent.parent
    return [d for d in (package / "presets", package.parent / "presets") if d.is_dir()]


def preset_dirs() -> list[Path]:
    """Where presets live: the shipped ones first (their names win), then the user's own folder."""
    return shipped_preset_dirs() + [d for d in _user_preset_dir if d.is_dir()]


def available_presets(directories: Sequence[Path] | None = None) -> dict[str, Path]:
    """Preset name → file, first directory wins."""
    found: dict[str, Path] = {}
    for folder in directories if directories is not None else preset_dirs():
        for path in sorted(Path(folder).glob("*.json")):
            found.setdefault(path.stem, path)
    return found


def load_preset(name: str, directories: Sequence[Path] | None = None) -> dict[str, Any]:
    """A preset by name (file stem), as a dict; SpecError naming the available ones if absent."""
    presets = available_presets(directories)
    if name not in presets:
        raise SpecError(
            f"there is no preset {name!r}",
            f"choose one of: {', '.join(sorted(presets)) or '(none installed)'}",
        )
    try:
        data = json.loads(presets[name].read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(f"preset {name!r} cannot be read: {exc}", f"fix or delete {presets[name]}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"preset {name!r} is not a JSON object", f"fix {presets[name]}")
    return data


# ------------------------------------------------------------------------------------- helpers


#: At most this many LoRAs per job (backend/spec.py: ``loras`` max_length).
MAX_LORAS = 8


def _lora(lora: Mapping[str, Any], index: int) -> dict[str, Any]:
    """One ``{name, weight}`` LoRA reference, checked as the backend will (weight -4..4)."""
    if index >= MAX_LORAS:
        raise SpecError(f"more than {MAX_LORAS} LoRAs", f"use at most {MAX_LORAS}")
    name = str(lora.get("name") or "").strip()
    if not name:
        raise SpecError(f"LoRA {index + 1} has no name", "pick an installed LoRA or type its hub id / file name")
    return {"name": name, "weight": _float_in(f"LoRA {name} weight", lora.get("weight", 1.0), -4.0, 4.0)}


def _int_in(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise SpecError(f"{name} must be a whole number, got {value!r}", f"set {name} to a whole number from {lo} to {hi}")
    if not lo <= int(value) <= hi:
        raise SpecError(f"{name} {int(value)} is outside {lo}..{hi}", f"set {name} between {lo} and {hi}")
    return int(value)


def _float_in(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{name} must be a number, got {value!r}", f"set {name} to a number from {lo:g} to {hi:g}")
    if not lo <= float(value) <= hi:
        raise SpecError(f"{name} {value} is outside {lo:g}..{hi:g}", f"set {name} between {lo:g} and {hi:g}")
    return float(value)


def _check_common(fields: dict[str, Any], where: str) -> None:
    if fields.get("steps") is not None:
        fields["steps"] = _int_in(f"steps of {where}", fields["steps"], 1, MAX_STEPS)
    if fields.get("guidance") is not None:
        fields["guidance"] = _float_in(f"guidance of {where}", fields["guidance"], 0.0, 30.0)
    if fields.get("scheduler") is not None and fields["scheduler"] not in SCHEDULERS:
        raise SpecError(f"unknown scheduler {fields['scheduler']!r} for {where}", f"use one of {', '.join(SCHEDULERS)}")


def _unit(unit: Mapping[str, Any], index: int) -> dict[str, Any]:
    """A validated ControlNet unit; only the keys given (plus ``image`` from the type)."""
    where = f"ControlNet unit {index + 1}"
    extra = sorted(set(unit) - set(UNIT_FIELDS) - {"enabled"})
    if extra:
        raise SpecError(f"{where} has unknown fields: {', '.join(extra)}", f"use only {', '.join(UNIT_FIELDS)}")
    out = {k: v for k, v in unit.items() if k in UNIT_FIELDS and v is not None}
    kind = out.get("type", "other")
    if kind not in UNIT_TYPES:
        raise SpecError(f"{where} has unknown type {kind!r}", f"use one of {', '.join(UNIT_TYPES)}")
    out["type"] = kind
    if "image" not in out:
        if kind not in DEFAULT_IMAGE_KEY:
            raise SpecError(f"{where} (type {kind!r}) names no image", "give the unit an `image` key")
        out["image"] = DEFAULT_IMAGE_KEY[kind]
    if not isinstance(out["image"], str) or not _IMAGE_KEY.match(out["image"]):
        raise SpecError(f"{where} has a bad image key {out['image']!r}", "use letters, digits and _ . : - (1-128)")
    if kind == "other" and not out.get("model"):
        raise SpecError(f"{where} has type 'other' and no model", "give the ControlNet `model`, or a known `type`")
    _weight_and_range(out, where)
    if out.get("mode", "balanced") not in UNIT_MODES:
        raise SpecError(f"{where} has unknown mode {out['mode']!r}", f"use one of {', '.join(UNIT_MODES)}")
    return out


def _weight_and_range(out: dict[str, Any], where: str) -> None:
    """Check (in place) ``weight`` (0..2) and ``start`` < ``end`` (fractions of the steps) of a ControlNet
    unit or a reference image."""
    if "weight" in out:
        out["weight"] = _float_in(f"weight of {where}", out["weight"], 0.0, 2.0)
    for key in ("start", "end"):
        if key in out:
            out[key] = _float_in(f"{key} of {where}", out[key], 0.0, 1.0)
    if out.get("start", 0.0) >= out.get("end", 1.0):
        raise SpecError(f"{where} starts at {out.get('start', 0.0):g} and ends at {out.get('end', 1.0):g}",
                        "start must be less than end (fractions of the steps)")


# -- reference images (IP-Adapter) --------------------------------------------------------------------

#: The image key the add-on sends its reference image under.
REFERENCE_KEY = "reference"
MAX_REFERENCES = 4
REFERENCE_FIELDS = ("image", "weight", "start", "end", "model")


def reference_entry(ref: Mapping[str, Any], index: int) -> dict[str, Any]:
    """A validated stage ``reference`` entry (backend/spec.py ReferenceImage); ``image`` defaults to
    :data:`REFERENCE_KEY`."""
    where = f"reference image {index + 1}"
    extra = sorted(set(ref) - set(REFERENCE_FIELDS))
    if extra:
        raise SpecError(f"{where} has unknown fields: {', '.join(extra)}", f"use only {', '.join(REFERENCE_FIELDS)}")
    out = {k: v for k, v in ref.items() if v is not None}
    out.setdefault("image", REFERENCE_KEY)
    if not isinstance(out["image"], str) or not _IMAGE_KEY.match(out["image"]):
        raise SpecError(f"{where} has a bad image key {out['image']!r}", "use letters, digits and _ . : - (1-128)")
    _weight_and_range(out, where)
    return out


def _merge_units(preset_units: list[Mapping[str, Any]], new_units: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged = [dict(u) for u in preset_units]
    for unit in new_units:
        match = next((m for m in merged if m.get("type") == unit["type"]), None)
        if match is None:
            merged.append(unit)
        else:
            match.update(unit)
    return merged


def _check_stage(stage: Mapping[str, Any], index: int, first: bool) -> dict[str, Any]:
    where = f"stage {index + 1}"
    out = dict(stage)
    kind = out.setdefault("type", "generate")
    if kind not in STAGE_TYPES:
        raise SpecError(f"{where} has unknown type {kind!r}", f"use one of {', '.join(STAGE_TYPES)}")
    _check_common(out, where)
    if kind == "texture_sync":  # per-view units (docs/spec.md); the stage has no `controlnets` of its own
        if not first:
            raise SpecError(f"{where} is a texture_sync stage after others", "a texture_sync stage must be the only stage")
        views = out.get("views") or []
        if not views or not out.get("correspondence"):
            raise SpecError(f"{where} (texture_sync) needs `views` and a `correspondence` key",
                            "build it with features.texturing_sync (Texture Objects, synchronized mode)")
        out["views"] = [{**dict(v), "controlnets": [_unit(u, i) for i, u in enumerate(v.get("controlnets") or [])]}
                        for v in views]
        return out
    units = [_unit(u, i) for i, u in enumerate(out.get("controlnets") or [])]
    if len(units) > MAX_CONTROLNETS:
        raise SpecError(
            f"{where} has {len(units)} ControlNet units; at most {MAX_CONTROLNETS} run together",
            "disable or remove some units",
        )
    for unit in units:
        _unit(unit, 0)  # merged fields must still make a valid unit (start < end)
    out["controlnets"] = units
    if kind == "inpaint" and not out.get("mask"):
        raise SpecError(f"{where} (inpaint) has no mask", "give the stage a `mask` image key (white = repaint)")
    if first and kind in ("img2img", "inpaint") and not out.get("image"):
        raise SpecError(f"{where} ({kind}) is first and has no image", "give it an `image` key, e.g. \"color\"")
    return out
