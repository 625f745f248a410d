"""Generate: the scene's passes → one backend job → the results as saved Blender images.

``generate(scene, settings)`` is the feature as a :class:`FeatureRun`: before its one ``yield`` it
renders the passes (main thread); after it, it loads the result files into Blender images tagged
with the job that made them. ``api.generate`` runs it blocking, the Generate operator modally.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

import bpy

from ..blender import settings as blender_settings
from ..blender.extract import Passes
from ..blender.extract import extract_passes as _extract_passes
from ..blender.held import Held
from ..core.job_chain import JobSteps
from ..core.remote_job import JobOutcome, JobRequest
from . import checks
from .base import FeatureRun, Progress
from .settings import JobSettings


@dataclass
class Generated:
    """What a Generate run made: the images (in result order) and the job's outcome (notes, files, id)."""

    images: list[bpy.types.Image]
    outcome: JobOutcome


def extract_passes(
    scene: bpy.types.Scene, camera: bpy.types.Object | None = None, resolution: tuple[int, int] | None = None,
    **kwargs: Any,
) -> Passes:
    """``blender.extract.extract_passes`` with the scene's Scenecast settings: the segmentation classes
    set in the UI (unless ``classes=``) and the Set Depth Range (unless ``depth_range=``)."""
    kwargs.setdefault("classes", blender_settings.object_classes(scene) or None)
    if "depth_range" not in kwargs:
        kwargs["depth_range"] = blender_settings.depth_override(scene)
    return _extract_passes(scene, camera, resolution, **kwargs)


def prepare(scene: bpy.types.Scene, settings: JobSettings, camera: bpy.types.Object | None = None) -> JobRequest:
    """Main-thread half of a generation: the passes under their conventional keys, and the request.

    Every control image travels under its key (presets name them so); the worker half encodes and
    sends only the ones the spec refers to. ``features.checks`` runs first: nothing is rendered for a
    job the backend would refuse."""
    problem = checks.camera_problem(scene, camera)
    if problem is not None:
        raise problem
    checks.before_render(settings.fields, settings.width, settings.height, settings.units, settings.loras)
    passes = extract_passes(scene, camera, (settings.width, settings.height))
    return settings.request(images=passes.control, name=scene.name)


def load_results(outcome: JobOutcome) -> list[bpy.types.Image]:
    """Main-thread half: the result files as Blender images, tagged with the job that made them.
    Waits for the files first (``run_job`` may hand the pixels over before the PNGs are written):
    the images are the files, whose text chunks keep the prompt, seed and model."""
    images = []
    for i, path in enumerate(outcome.wait_files()):
        image = bpy.data.images.load(path, check_existing=True)
        if bpy.data.filepath:  # relative to the .blend when it is saved: the project folder can move
            try:
                image.filepath = bpy.path.relpath(path)
            except ValueError:  # another drive (Windows): keep it absolute
                pass
        if path.startswith(tempfile.gettempdir() + os.sep):
            image.pack()  # an unsaved .blend's results live in a temp folder: keep them in the file
        image["scenecast_job"] = outcome.job_id
        image["scenecast_model"] = outcome.model
        image["scenecast_index"] = i
        images.append(image)
    return images


def _steps(request: JobRequest, progress: Progress, notes: list[str]) -> JobSteps[Generated]:
    progress.set(0, 1, "generating")
    outcome: JobOutcome = yield request
    try:
        notes.extend(outcome.notes)
        progress.set(0, 1, "loading the results")
        return Generated(load_results(outcome), outcome)
    finally:
        outcome.discard()  # failed before the files were loaded: no saving thread outlives the run


def generate(scene: bpy.types.Scene, settings: JobSettings, camera: bpy.types.Object | None = None) -> FeatureRun[Generated]:
    """The Generate run; the passes are rendered now (bad settings raise before anything changes)."""
    request = prepare(scene, settings, camera)
    progress, notes = Progress(), list[str]()
    return FeatureRun("Generate", _steps(request, progress, notes), Held(scene, what="Generate"), progress, notes)
