"""The checks every feature runs before its first pass is rendered (one place, main thread).

Rendering passes takes seconds to minutes and a job that the backend will refuse wastes all of it, so
``before_render`` refuses up front what can be known: the size (zero, not a multiple of 8 — 16 for
the flow families —, over the backend's limit), the backend reachable (unless the add-on may start it
itself), the model and explicit ControlNet models installed when the backend may not download them.
The selection is checked where a feature takes objects (``check_meshes``). Each failure is a
``ScenecastError`` (``core.preflight``) whose fix names what to change.

:data:`renders_blocked_by` is for tests: it counts the runs these checks stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..core import backend_process, model_list, preflight
from ..core.client import BackendClient
from ..core.errors import BackendUnavailable, ScenecastError
from ..core.jobspec import MAX_SIDE

#: Seconds the reachability probe waits: a backend that answers at all answers /v1/health at once.
PROBE_TIMEOUT = 3.0


def backend_facts(server: str, token: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """``(health, models)`` of the backend at ``server``, or None when nothing answers there.

    Raises the client's error when something answers but is not a (compatible) Scenecast backend."""
    client = BackendClient(server, token=token or None, timeout=PROBE_TIMEOUT)
    try:
        health = client.health()
    except BackendUnavailable:
        return None
    client.timeout = 30.0  # listing scans the caches and the models folders
    models = client.models()
    model_list.store(server, models)  # the panel's search lists use it too
    return health, models


# ------------------------------------------------------------------ why an operator is greyed out
# Each ``*_problem`` returns the error a run would raise (or None); operators' poll shows ``str(error)``
# with ``poll_message_set`` and the features raise the same error, so scripts read the same reason.

def selection_problem(objects: Iterable[Any], what: str, mode: str | None = None) -> preflight.SelectionError | None:
    """Why ``objects`` (the selection) cannot be worked on by a mesh feature ``what``; ``mode``: the
    context's mode when called from the UI (None: not checked)."""
    if mode is not None and mode != "OBJECT":
        return preflight.SelectionError(f"{what} works in Object Mode, not {mode.replace('_', ' ').title()}",
                                        "switch to Object Mode (Tab in the 3D Viewport)")
    objs = list(objects)
    if not any(getattr(o, "type", None) == "MESH" for o in objs):
        found = ", ".join(sorted({str(getattr(o, "type", "?")).lower() for o in objs})) or "nothing"
        return preflight.SelectionError(f"{what} needs mesh objects (only mesh objects hold UV textures);"
                                        f" the selection holds {found}",
                                        "select one or more mesh objects in the 3D Viewport")
    return None


def camera_problem(scene: Any, camera: Any = None) -> ScenecastError | None:
    """Why the scene's view cannot be rendered: no camera given and no scene camera."""
    if camera is None and (scene is None or scene.camera is None):
        return ScenecastError("the scene has no camera",
                              "add a camera and make it the scene camera (View › Cameras › Set Active Object as Camera)")
    return None


def check_meshes(objects: Iterable[Any], what: str) -> None:
    """Raise :func:`selection_problem`'s error, if any (features that texture meshes)."""
    problem = selection_problem(objects, what)
    if problem is not None:
        raise problem


def before_render(fields: Mapping[str, Any], width: int, height: int, units: Iterable[Mapping[str, Any]] = (),
                  loras: Iterable[Mapping[str, Any]] = ()) -> list[str]:
    """Check a run before its passes are rendered; returns notes (e.g. a model that will download).

    ``fields`` are the ``JobRequest`` fields (``features.settings.request_fields``)."""
    try:
        return _before_render(fields, width, height, units, loras)
    except ScenecastError:
        _blocked[0] += 1
        raise


_blocked = [0]


def renders_blocked_by() -> int:
    """How many runs :func:`before_render` has stopped in this session (for tests and diagnostics)."""
    return _blocked[0]


def _before_render(fields: Mapping[str, Any], width: int, height: int, units: Iterable[Mapping[str, Any]],
                   loras: Iterable[Mapping[str, Any]]) -> list[str]:
    preflight.check_size(width, height, max_side=MAX_SIDE)  # no network needed for the plain limits
    server = str(fields.get("server") or backend_process.DEFAULT_URL)
    facts = backend_facts(server, fields.get("token"))
    if facts is None:
        if fields.get("auto_start", True) and backend_process.is_local_url(server):  # JobRequest's default
            return []  # the add-on starts it when the job is sent; the backend checks the rest then
        if backend_process.is_local_url(server):  # the same words as core.remote_job.ensure_server
            fix = ("start it (python -m backend serve, or the Start Backend button), or turn on"
                   " Preferences › Add-ons › Scenecast › Start Local Backend Automatically")
        else:
            fix = ("start the backend on that machine, check that it is reachable from here, and check the"
                   " Backend URL in Preferences › Add-ons › Scenecast")
        raise BackendUnavailable(f"no Scenecast backend answers at {server}", fix)
    health, models = facts
    explicit = fields.get("model") or ""
    model = explicit or str(fields.get("default_model") or "")
    entry = preflight.model_entry(models, model)
    family = str(entry["family"]) if entry is not None and entry.get("family") else None
    preflight.check_size(width, height, family=family, max_side=int(health.get("max_side") or MAX_SIDE))
    controlnets = [str(u["model"]) for u in units if u.get("model")]
    # The default model offline falls back to builtin:tiny with a note (core.remote_job.choose_model).
    return preflight.check_installed(models, explicit, controlnets, offline=bool(fields.get("offline")),
                                     loras=[str(x["name"]) for x in loras if x.get("name")])
