"""The backend's installed models (``GET /v1/models``), fetched on demand and cached per backend URL.

The sidebar's Model and ControlNet fields search this list while Blender draws, so nothing here
blocks: :func:`cached` answers from memory at once and, when the list is missing or older than
:data:`MAX_AGE`, :func:`refresh` fetches it in a daemon thread (standard library, no bpy). A backend
that does not answer leaves the last list (or none) and :func:`error` says why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import preflight
from .client import BackendClient
from .errors import ScenecastError

#: Seconds a fetched list is used before the next look-up refreshes it in the background.
MAX_AGE = 30.0

_lock = threading.Lock()
_lists: dict[str, tuple[float, list[dict[str, Any]]]] = {}
_errors: dict[str, str] = {}
_fetching: dict[str, threading.Thread] = {}


def cached(server: str, token: str | None = None, *, refresh_if_old: bool = True) -> list[dict[str, Any]] | None:
    """The last list fetched from ``server`` (None: never fetched); starts a background refresh when it
    is missing or old. Never waits for the network."""
    with _lock:
        entry = _lists.get(server)
    if refresh_if_old and (entry is None or time.monotonic() - entry[0] > MAX_AGE):
        refresh(server, token)
    return None if entry is None else entry[1]


def error(server: str) -> str | None:
    """Why the last fetch from ``server`` failed, if it did."""
    with _lock:
        return _errors.get(server)


def refresh(server: str, token: str | None = None, on_done: Callable[[], None] | None = None,
            wait: bool = False) -> threading.Thread | None:
    """Fetch ``server``'s list in a daemon thread (one at a time per server: a second call gets the one
    under way); ``wait``: join it."""
    with _lock:
        running = _fetching.get(server)
        if running is None:
            running = _fetching[server] = threading.Thread(target=lambda: fetch(), name="scenecast-models",
                                                           daemon=True)
            start = True
        else:
            start = False

    def fetch() -> None:
        try:
            models = BackendClient(server, token=token or None, timeout=30.0).models()
            with _lock:
                _lists[server] = (time.monotonic(), models)
                _errors.pop(server, None)
        except ScenecastError as exc:
            with _lock:
                _errors[server] = str(exc)
        finally:
            with _lock:
                _fetching.pop(server, None)
            if on_done is not None:
                on_done()

    if start:
        running.start()
    if wait:
        running.join()
    return running


def store(server: str, models: list[dict[str, Any]]) -> None:
    """Remember a list fetched elsewhere (the checks before rendering fetch it too)."""
    with _lock:
        _lists[server] = (time.monotonic(), list(models))
        _errors.pop(server, None)


def ids(server: str, kind: str = "base", token: str | None = None) -> list[str]:
    """Installed model ids of ``kind`` ("base", "controlnet", "lora", "vae") in ``server``'s cached list."""
    return sorted(str(m.get("id")) for m in cached(server, token) or []
                  if m.get("kind", "base") == kind and m.get("installed", True))


def family_of(model_id: str, server: str | None = None) -> str | None:
    """``model_id``'s family: from the cached list when it is there, else guessed from the name."""
    if server is not None:
        entry = preflight.model_entry(cached(server, refresh_if_old=False) or [], model_id)
        if entry is not None and entry.get("family"):
            return str(entry["family"])
    return preflight.guess_family(model_id)


#: What the search lists call each family (the backend's ``family`` values).
FAMILY_LABELS = {"sd15": "SD 1.5", "sdxl": "SDXL", "flux": "FLUX.1 [dev]", "flux-schnell": "FLUX.1 [schnell]",
                 "zimage": "Z-Image", "qwen": "Qwen-Image", "sd": "SD 1.5/SDXL", "sd2": "SD 2.x", "sd3": "SD3"}
_SOURCE_LABELS = {"folder": "models folder", "hub": "HF cache", "builtin": "builtin, random weights",
                  "local": "LoRA folder"}


def same_family(a: str | None, b: str | None) -> bool:
    """Whether models of families ``a`` and ``b`` go together (FLUX.1 dev and schnell share ControlNets
    and LoRAs; a VAE of family "sd" suits SD 1.5 and SDXL)."""
    def norm(f: str) -> str:
        return "flux" if f == "flux-schnell" else f

    if not a or not b:
        return False
    if "sd" in (a, b):
        return {a, b} <= {"sd", "sd15", "sdxl"}
    return norm(a) == norm(b)


def label(entry: Mapping[str, Any]) -> str:
    """The description beside an id in a search list: family, GGUF quantization, where it is, and why it
    cannot be used when the backend says so (e.g. "FLUX.1 [dev] · GGUF Q8_0 · models folder")."""
    family = str(entry.get("family") or "")
    parts = [FAMILY_LABELS.get(family, family) if family and family != "unknown" else "unknown family"]
    if entry.get("format") == "gguf":
        parts.append(f"GGUF {entry.get('quantization') or ''}".strip())
    source = str(entry.get("source") or "")
    if source:
        parts.append(_SOURCE_LABELS.get(source, source))
    if entry.get("runnable") is False:
        parts.append(f"not usable: {entry.get('reason') or 'the backend cannot load this file'}")
    return " · ".join(parts)


def search_items(server: str, kind: str = "base", token: str | None = None, *,
                 family: str | None = None) -> list[tuple[str, str]]:
    """``(id, label)`` of the installed models of ``kind`` in ``server``'s cached list, sorted by id; with
    ``family`` (the base model's, for ControlNets, LoRAs and VAEs), only those that go with it, plus
    those whose family the backend does not know. Never waits for the network (see :func:`cached`)."""
    out = []
    for m in cached(server, token) or []:
        if m.get("kind", "base") != kind or not m.get("installed", True):
            continue
        fam = m.get("family")
        if family and fam and fam != "unknown" and not same_family(family, str(fam)):
            continue
        out.append((str(m.get("id")), label(m)))
    return sorted(out)
