"""What can be checked before passes are rendered, as pure functions (no bpy, no network).

``features.checks`` gathers the facts (the backend's ``/v1/health`` and ``/v1/models``, the
selection) and calls these; every failure is a ``ScenecastError`` whose fix says what to change.

Sizes: every family needs whole latents — 8 px for the UNet families (SD 1.5, SDXL: 8× VAE) and 16 px
for the flow-transformer families (FLUX, Z-Image, Qwen-Image: 8× VAE, then 2×2 patches).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import ScenecastError
from .jobspec import MAX_SIDE, MIN_SIDE, SpecError

#: Families whose transformer packs 2×2 latent patches: sides must be multiples of 16.
FLOW_FAMILIES = frozenset({"flux", "flux-schnell", "zimage", "qwen"})
#: Longest side of a default size. SD 1.5-class models are trained at 512² and repeat subjects past
#: ~768–1024 px; SDXL and the flow families are trained around 1024² (1 MP) and hold up to ~1.5 MP.
DEFAULT_MAX_SIDE = {"sd15": 1024}
OTHER_MAX_SIDE = 1536
#: Models the backend always has (random weights), never "missing".
BUILTIN_PREFIX = "builtin:"


class ModelNotInstalled(ScenecastError, ValueError):
    """A model or ControlNet the job names is not on the backend, and it may not download it."""

    default_fix = "install the model (or go online so the backend can download it), or pick an installed one"


class ModelUnusable(ScenecastError, ValueError):
    """A model the job names is on the backend but the backend says it cannot run it (``runnable: false``
    in ``/v1/models``: a family it does not run, a GGUF that is no image transformer, no ``gguf`` package)."""

    default_fix = "pick another model: the search lists say which ones can be used"


class SelectionError(ScenecastError, ValueError):
    """The selection does not hold what the feature works on."""

    default_fix = "select the objects to work on in the 3D Viewport (Object Mode), then run it again"


def side_multiple(family: str | None) -> int:
    """The multiple both sides must be for ``family`` (8 when unknown)."""
    return 16 if family in FLOW_FAMILIES else 8


def default_max_side(family: str | None) -> int:
    """The longest side of a default size for ``family`` (see :data:`DEFAULT_MAX_SIDE`); unknown: 1024."""
    if family is None:
        return 1024
    return DEFAULT_MAX_SIDE.get(family, OTHER_MAX_SIDE)


def check_size(width: Any, height: Any, *, family: str | None = None, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """``(width, height)`` when both are whole, positive multiples of the family's multiple within
    ``MIN_SIDE..max_side``; a ``SpecError`` naming the nearest good value otherwise."""
    multiple = side_multiple(family)
    what = f"{family} models" if family in FLOW_FAMILIES else "the model"
    top = max(MIN_SIDE, (int(max_side) // multiple) * multiple)
    out = []
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise SpecError(f"{name} must be a whole number of pixels, got {value!r}", f"set {name} to e.g. 512")
        v = int(value)
        nearest = min(top, max(MIN_SIDE, multiple * int(v / multiple + 0.5)))
        if v <= 0:
            raise SpecError(f"{name} is {v}: an image needs at least {MIN_SIDE} px", f"set {name} to {nearest}")
        if v > max_side:
            raise SpecError(f"{name} {v} is over the backend's limit of {max_side} px",
                            f"set {name} to {top} or less (upscale the result afterwards for a larger image)")
        if v < MIN_SIDE or v % multiple:
            raise SpecError(f"{name} {v} is not a multiple of {multiple} between {MIN_SIDE} and {max_side}"
                            f" ({what} need multiples of {multiple})", f"set {name} to {nearest}")
        out.append(v)
    return out[0], out[1]


def fit_size(render_x: int, render_y: int, *, family: str | None = None, max_side: int | None = None) -> tuple[int, int]:
    """A size with the render's aspect, its longest side at most ``max_side`` (default: the family's),
    each side rounded to the family's multiple — the default size when the user sets none."""
    multiple = side_multiple(family)
    top = max_side or default_max_side(family)
    rx, ry = max(1, int(render_x)), max(1, int(render_y))
    scale = min(1.0, top / max(rx, ry))
    w, h = rx * scale, ry * scale
    lo = ((MIN_SIDE + multiple - 1) // multiple) * multiple
    cap = (top // multiple) * multiple

    def snap(v: float) -> int:
        return min(cap, max(lo, multiple * int(v / multiple + 0.5)))

    return snap(w), snap(h)


def model_entry(models: Iterable[Mapping[str, Any]], model_id: str) -> Mapping[str, Any] | None:
    """The ``/v1/models`` entry for ``model_id`` (by id, or by file name for folder models)."""
    for m in models:
        if m.get("id") == model_id or m.get("name") == model_id:
            return m
    return None


_KIND_OF = {"model": "base", "ControlNet": "controlnet", "LoRA": "lora"}


def _is_path(name: str) -> bool:
    """A file or folder path rather than an installed name or a hub id ("org/name")."""
    return (name.startswith(("/", "~", ".", "\\")) or (len(name) > 2 and name[1] == ":" and name[2] in "\\/")
            or ("/" in name or "\\" in name) and name.lower().endswith((".safetensors", ".gguf")))


def check_installed(models: Sequence[Mapping[str, Any]], model: str, controlnets: Iterable[str], *,
                    offline: bool, loras: Iterable[str] = ()) -> list[str]:
    """Notes about models the backend will download; ``ModelNotInstalled`` when offline and one of
    ``model`` / ``controlnets`` (explicit ControlNet ids) / ``loras`` is not installed, ``ModelUnusable``
    when the backend lists one as not runnable (with its reason). File and folder paths are left to the
    backend (only it knows its own file system)."""
    notes: list[str] = []
    named = [("model", model)] + [("ControlNet", c) for c in controlnets] + [("LoRA", x) for x in loras]
    for kind, name in named:
        if not name or name.startswith(BUILTIN_PREFIX) or _is_path(name):
            continue
        entry = model_entry(models, name)
        if entry is not None and entry.get("runnable") is False:
            family = f"{entry['family']} " if entry.get("family") else ""
            why = entry.get("reason") or f"the backend cannot load this {family}file"
            raise ModelUnusable(f"the {kind} {name!r} cannot be used: {why}")
        if entry is not None and entry.get("installed", True):
            continue
        if offline:
            installed = sorted(str(m.get("id")) for m in models if m.get("installed", True)
                               and m.get("kind", "base") == _KIND_OF[kind])
            raise ModelNotInstalled(
                f"the {kind} {name!r} is not installed on the backend and online access is off",
                "turn on Preferences › System › Allow Online Access (or download it once), add its folder to"
                " Models Folders, or pick an installed one" + (f": {', '.join(installed[:8])}" if installed else ""),
            )
        notes.append(f"the {kind} {name} is not installed yet: the backend downloads it first (this can take a while)")
    return notes


def guess_family(model_id: str) -> str | None:
    """The family a model id's name suggests, for a default size before the backend is asked (the
    backend's ``/v1/models`` is the authority: see ``core.model_list``). None when the name says nothing."""
    name = model_id.lower()
    if name.startswith(BUILTIN_PREFIX):
        return "flux" if "flux" in name else "sd15"
    if "flux" in name:
        return None if ("flux.2" in name or "flux2" in name) else ("flux-schnell" if "schnell" in name else "flux")
    if "z-image" in name or "zimage" in name:
        return "zimage"
    if "qwen-image" in name or "qwenimage" in name:
        return "qwen"
    if "sdxl" in name or "stable-diffusion-xl" in name or "-xl" in name or "_xl" in name or "pony" in name:
        return "sdxl"
    if "stable-diffusion-v1" in name or "sd15" in name or "sd-1.5" in name or "v1-5" in name:
        return "sd15"
    return None
