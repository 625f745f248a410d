"""Concept-frame sequences without bpy: file layout, the run record, per-frame job stages, the warp step.

A sequence run writes ``frame_<####>.png`` per frame into one output folder and a JSON record of the
run, ``scenecast_frames_<start>-<end>.json`` (one per frame range, so farm machines sharing a folder
never write the same record). Frames are the resumable unit: a frame file exists only once complete
(written by rename), so the first missing file is where a cancelled or crashed run goes on.

Temporal consistency (``consistency_inputs``): the previous *output* frame is warped into this frame
along Blender's Vector pass (``core.flow``); pixels frame t−1 cannot supply (outside it, or its depth
or object disagrees) are the disocclusion ``holes``, dilated, and inpainted; a light img2img refresh
over the whole frame follows (``later_stages``). Arrays are row 0 top; images uint8 sRGB.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import flow
from .errors import ScenecastError
from .files import write_atomic
from .masks import dilate, width_for_radius

RECORD_VERSION = 1
FRAME_PATTERN = "frame_{frame:04d}.png"
#: Image keys of the warped previous frame and of the hole mask in a later frame's job.
WARPED_KEY, HOLES_KEY = "warped", "holes"
#: Settings that must match for a run to continue an earlier run's frames.
RESUME_KEYS = ("prompt", "negative_prompt", "seed", "model", "width", "height", "camera", "depth_range", "steps", "guidance",
               "consistency", "hole_strength", "refresh_strength", "dilate_px", "depth_tolerance", "object_ids",
               "first_frame_preset", "later_controlnets")  # fmt: skip


def frame_path(output_dir: str, frame: int) -> str:
    """Where frame ``frame``'s PNG lives (4-digit zero-padded frame number, negatives with a sign)."""
    return os.path.join(output_dir, FRAME_PATTERN.format(frame=frame))


def record_path(output_dir: str, start: int, end: int) -> str:
    """The run record of the frame range ``start``..``end`` (inclusive) in ``output_dir``."""
    return os.path.join(output_dir, f"scenecast_frames_{start:04d}-{end:04d}.json")


def first_missing(output_dir: str, frames: Sequence[int]) -> int | None:
    """The first frame of ``frames`` without a finished PNG, or None when all are there."""
    return next((f for f in frames if not os.path.isfile(frame_path(output_dir, f))), None)


def check_range(start: int, end: int) -> list[int]:
    """The frames ``start``..``end`` inclusive; ValueError with the fix when the range is empty."""
    if int(start) != start or int(end) != end:
        raise ValueError(f"frame numbers must be whole numbers, got {start!r}..{end!r}")
    if end < start:
        raise ValueError(f"the frame range {start}..{end} is empty: the end frame must not be before the start")
    return list(range(int(start), int(end) + 1))


# --------------------------------------------------------------------------------------- job stages


def main_stage_settings(first_spec: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ControlNets of a first-frame spec's main stage (the first that has any) and its job fields
    (negative prompt, steps, guidance, scheduler, LoRAs): what every later frame runs with."""
    stages = first_spec.get("stages") or []
    main = next((s for s in stages if s.get("controlnets")), stages[0] if stages else {})
    controlnets = [dict(u) for u in main.get("controlnets") or []]
    fields = {k: first_spec[k] for k in ("negative_prompt", "steps", "guidance", "scheduler", "loras")
              if first_spec.get(k) is not None}  # fmt: skip
    return controlnets, fields


def later_stages(
    controlnets: Sequence[Mapping[str, Any]],
    fields: Mapping[str, Any],
    *,
    has_holes: bool,
    hole_strength: float,
    refresh_strength: float,
) -> dict[str, Any] | None:
    """A partial spec (a preset dict for ``build_job_spec``) for a frame after the first.

    Stages: ``inpaint`` of the warped previous frame where the holes are (``hole_strength``), then an
    ``img2img`` refresh of the whole frame (``refresh_strength``; 0 skips it), ControlNets on both.
    Without holes the refresh alone runs on the warped frame. None when neither has anything to do:
    the warped frame is the output as it is.
    """
    stages: list[dict[str, Any]] = []
    if has_holes and hole_strength > 0:
        stages.append({"type": "inpaint", "image": WARPED_KEY, "mask": HOLES_KEY, "strength": float(hole_strength),
                       "controlnets": [dict(u) for u in controlnets]})
    if refresh_strength > 0:
        stage: dict[str, Any] = {"type": "img2img", "strength": float(refresh_strength),
                                 "controlnets": [dict(u) for u in controlnets]}
        if not stages:
            stage["image"] = WARPED_KEY
        stages.append(stage)
    if not stages:
        return None
    return {**dict(fields), "stages": stages}


# ------------------------------------------------------------------------------------------- warping


@dataclass
class WarpStep:
    """What frame t gets from frame t−1: the warped previous output (uint8 (H, W, 3)), the hole mask
    to inpaint (dilated, bool (H, W)), the undilated ``valid`` pixels the flicker metric counts, and
    the flow to previous (H, W, 2) in pixels (dx right, dy down)."""

    warped: np.ndarray
    holes: np.ndarray
    valid: np.ndarray
    flow: np.ndarray

    @property
    def hole_fraction(self) -> float:
        return float(self.holes.mean()) if self.holes.size else 0.0

    def mask_image(self) -> np.ndarray:
        """The hole mask as the backend reads masks: (H, W) uint8, 255 = repaint, 0 = keep."""
        return np.where(self.holes, np.uint8(255), np.uint8(0))


def consistency_inputs(
    previous_rgb: np.ndarray,
    vector: np.ndarray,
    depth_t: np.ndarray,
    depth_prev: np.ndarray,
    *,
    object_id_t: np.ndarray | None = None,
    object_id_prev: np.ndarray | None = None,
    dilate_px: int = 2,
    depth_tolerance: float = flow.DEFAULT_REL_TOLERANCE,
) -> WarpStep:
    """Warp frame t−1's output into frame t and find what must be repainted (see the module doc).

    ``previous_rgb``: (H, W, 3|4) uint8 output of frame t−1 (alpha dropped). ``vector``: frame t's
    Vector pass (H, W, 4). Depths planar, ``inf`` background; object ids −1 background.
    """
    prev = np.asarray(previous_rgb)
    if prev.ndim == 2:
        prev = np.repeat(prev[..., None], 3, axis=2)
    prev = prev[..., :3]
    if prev.shape[:2] != np.shape(depth_t):
        raise ScenecastError(
            f"the previous frame is {prev.shape[1]}×{prev.shape[0]} but this frame renders at"
            f" {np.shape(depth_t)[1]}×{np.shape(depth_t)[0]}",
            "use the same width and height for the whole sequence, or a new output folder",
        )
    flow_prev = flow.flow_to_previous(vector)
    warped, _inside = flow.warp(prev, flow_prev)
    holes = flow.disocclusion_mask(flow_prev, depth_t, depth_prev, rel_tolerance=depth_tolerance,
                                   object_id_t=object_id_t, object_id_prev=object_id_prev)
    return WarpStep(
        warped=np.clip(np.rint(warped), 0, 255).astype(np.uint8),
        holes=dilate(holes, width_for_radius(dilate_px)),
        valid=~holes,
        flow=flow_prev,
    )


def frame_flicker(current_rgb: np.ndarray, previous_rgb: np.ndarray, step: WarpStep) -> float:
    """Mean absolute difference (0..255) between this output and the previous one warped into it,
    over the pixels the previous frame can supply: ``flow.warped_difference`` on RGB."""
    return flow.warped_difference(np.asarray(current_rgb)[..., :3], np.asarray(previous_rgb)[..., :3],
                                  step.flow, step.valid)


# ------------------------------------------------------------------------------------------- record


def new_record(settings: Mapping[str, Any], start: int, end: int) -> dict[str, Any]:
    """A fresh run record for frames ``start``..``end`` with the run's ``settings``."""
    return {"scenecast_frames": RECORD_VERSION, "range": [int(start), int(end)], "settings": dict(settings),
            "frames": {}, "runs": [], "status": "running"}  # fmt: skip


def load_record(path: str) -> dict[str, Any] | None:
    """The record at ``path``, or None when there is none; ScenecastError when it cannot be read."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ScenecastError(f"the run record {path} cannot be read ({exc})",
                             "delete it to start the range afresh (finished frames are kept)") from exc
    if not isinstance(data, dict) or data.get("scenecast_frames") != RECORD_VERSION:
        raise ScenecastError(f"{path} is not a Scenecast frames record of version {RECORD_VERSION}",
                             "choose another output folder, or delete the file")
    return data


def resume_conflicts(record: Mapping[str, Any], settings: Mapping[str, Any]) -> list[str]:
    """The settings that differ from an earlier run's record: finished frames made with other settings
    must not be mixed with new ones."""
    old = record.get("settings") or {}
    return [k for k in RESUME_KEYS if _jsonish(old.get(k)) != _jsonish(settings.get(k))]


def save_record(path: str, record: dict[str, Any]) -> None:
    """Write the record atomically (readers never see half a file), with per-run flicker summary."""
    record["updated"] = time.time()
    values = [f["flicker"] for f in record.get("frames", {}).values() if isinstance(f.get("flicker"), (int, float))]
    record["flicker_mean"] = float(np.mean(values)) if values else None
    write_atomic(path, (json.dumps(record, indent=1, sort_keys=True, allow_nan=False, default=_default) + "\n")
                 .encode("utf-8"))


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _jsonish(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=_default))


def clean_float(value: float) -> float | None:
    """A float for the record: None for nan/inf (JSON has neither)."""
    return float(value) if np.isfinite(value) else None


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "scenecast"
