"""``python -m backend generate``'s own parts: reading a spec file (presets, image paths) and running
the job in this process through the same queue and writer the server uses (``--server`` sends it to a
running backend instead: ``cli_remote.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .cli import CliError


def load_spec_file(path: Path, model: str | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    """Read a spec *file*: a job spec plus two file-only keys, resolved here and never sent.

    - ``"preset": "<name>"`` starts from ``presets/<name>.json``; the file's own top-level fields win.
    - ``"images": {"<key>": "<path>"}`` says where each image key's PNG is, relative to the spec file.
      A key without an entry is looked for as ``<key>.png`` beside the spec.
    ``model`` (``--model``) replaces the base model on the job and on every stage.
    Returns the spec as a dict (not yet validated) and key -> PNG path.
    """
    from .spec import JobSpec, apply_preset, list_presets, loads_json

    try:
        data = loads_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CliError(f"no spec file {path}", "give the path of a JSON job spec, e.g. examples/*.json")
    except ValueError as exc:
        raise CliError(f"{path} is not valid JSON: {exc}", "fix the JSON syntax at the position given")
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a JSON object", "see docs/spec.md")
    image_paths = data.pop("images", None) or {}
    if not isinstance(image_paths, dict):
        raise CliError(f"{path}: `images` must map image keys to file paths", "see docs/spec.md, 'Spec files'")
    if "preset" in data:
        presets = list_presets()
        if data["preset"] not in presets:
            raise CliError(f"{path}: unknown preset {data['preset']!r}", f"use one of: {', '.join(presets)}")
        data = apply_preset(presets[data["preset"]], data)
    if model:
        data["model"] = model
        for stage in data.get("stages") or []:
            if isinstance(stage, dict):
                stage.pop("model", None)
    keys: set[str] = set()
    try:
        keys = JobSpec.model_validate(data).image_keys()
    except Exception:
        pass  # validation errors are reported by the server or the queue with their full message
    resolved = {}
    for key in sorted(keys | set(image_paths)):
        if key.startswith("sha256:") and key not in image_paths:
            continue  # an id of an image already uploaded to the server
        resolved[key] = (path.parent / image_paths.get(key, f"{key}.png")).resolve()
        if not resolved[key].is_file():
            raise CliError(f"{path}: image '{key}' should be at {resolved[key]}, and nothing is there",
                           "put the PNG there, or map the key in the spec's \"images\" section")
    return data, resolved


def generate_local(data: dict[str, Any], image_paths: dict[str, Path], out: Path, stem: str, *,
                   device: str | None = None, dtype: str | None = None, memory_mode: str = "auto",
                   gguf_companions: dict[str, str] | None = None) -> list[Path]:
    """Run one job in this process through the same queue and writer the server uses."""
    import hashlib

    from pydantic import ValidationError

    from .jobs.images import decode_png
    from .jobs.queue import JobQueue
    from .models import ModelManager
    from .pipelines import run_job
    from .spec import JobSpec, validation_message

    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        raise CliError(f"the spec is invalid: {validation_message(exc.errors())}", "see docs/spec.md")
    images, hashes = {}, {}
    for key, path in image_paths.items():
        raw = path.read_bytes()
        images[key] = decode_png(raw, key)
        hashes[key] = hashlib.sha256(raw).hexdigest()
    models = ModelManager(device=device, dtype=dtype, memory_mode=memory_mode, gguf_companions=gguf_companions)
    queue = JobQueue(run_job, models, out, place=lambda job: (out, f"{stem}-{job.id[:8]}"))
    queue.start()
    try:
        job = queue.submit(spec, images, hashes)
        from .cli_remote import ProgressPrinter

        printer = ProgressPrinter()
        for event in job.events.subscribe(lambda ev: printer(ev.data)):
            printer(event.data)
        job.finished.wait()
    except KeyboardInterrupt:
        queue.cancel(job.id)
        job.finished.wait()
    finally:
        queue.stop()
    if job.status != "done":
        error = job.error or {"message": f"the job was {job.status}", "fix": None}
        raise CliError(error["message"], error.get("fix"))
    return [Path(r["path"]) for r in job.results] + [out / f"{stem}-{job.id[:8]}.json"]
