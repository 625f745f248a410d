"""texture_sync stages through the add-on's spec builder and client (Texture Objects, synchronized mode)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from addon.core.client import multipart_chunks
from addon.core.errors import ScenecastError
from addon.core.jobspec import build_job_spec, image_keys
from addon.core.sync_views import CONTENT_TYPE, Level, encode


def sync_preset(views: int = 2, **stage) -> dict:  # noqa: ANN003
    return {"stages": [{"type": "texture_sync", "correspondence": "correspondence", "sync_fraction": 0.8,
                        "views": [{"controlnets": [{"type": "depth", "image": f"v{i}_depth"}],
                                   "prompt_suffix": "front view"} for i in range(views)], **stage}]}


def test_a_texture_sync_stage_keeps_its_views_and_names_every_part_it_needs() -> None:
    spec = build_job_spec(model="builtin:tiny", prompt="x", width=64, height=64, preset=sync_preset())
    stage = spec["stages"][0]
    assert "controlnets" not in stage  # the backend's TextureSyncStage has none of its own (extra: forbidden)
    assert [v["controlnets"][0]["image"] for v in stage["views"]] == ["v0_depth", "v1_depth"]
    assert image_keys(spec) == {"v0_depth", "v1_depth", "correspondence"}


def test_a_bad_unit_in_a_view_is_refused_with_the_fix() -> None:
    preset = sync_preset()
    preset["stages"][0]["views"][1]["controlnets"][0]["type"] = "nonsense"
    with pytest.raises(ScenecastError, match="unknown type"):
        build_job_spec(model="builtin:tiny", prompt="x", preset=preset)
    with pytest.raises(ScenecastError, match="needs `views` and a `correspondence`"):
        build_job_spec(model="builtin:tiny", prompt="x", preset={"stages": [{"type": "texture_sync", "views": []}]})


def test_the_correspondence_part_goes_with_its_own_content_type() -> None:
    part = encode([Level("latent", np.zeros((1, 2, 2), np.int32), np.zeros((1, 2, 2), np.float32), 1)])
    chunks, _ = multipart_chunks(b"{}", {"correspondence": part, "v0_depth": b"\x89PNG\r\n\x1a\n"})
    body = b"".join(chunks)
    assert f'name="correspondence"; filename="correspondence.sccr"\r\nContent-Type: {CONTENT_TYPE}'.encode() in body
    assert b'name="v0_depth"; filename="v0_depth.png"\r\nContent-Type: image/png' in body


def test_a_reference_image_goes_to_the_texture_sync_stage_and_validates_against_the_backend() -> None:
    """Texture Objects in synchronized mode: the settings' reference entry (``params["reference"]``) lands on
    the one texture_sync stage, its image is one of the parts, and the backend's JobSpec takes the spec."""
    spec = build_job_spec(model="builtin:tiny", prompt="x", width=64, height=64, preset=sync_preset(),
                          reference=[{"weight": 0.6}])
    stage = spec["stages"][0]
    assert stage["reference"] == [{"image": "reference", "weight": 0.6}]
    assert image_keys(spec) == {"v0_depth", "v1_depth", "correspondence", "reference"}
    root = Path(__file__).resolve().parents[2]
    python = root / ".venv" / "bin" / "python"
    if not python.exists():
        pytest.skip("backend venv (.venv) not built")
    script = ("import json, sys\nfrom backend.spec import JobSpec\n"
              "s = JobSpec.model_validate(json.load(sys.stdin))\n"
              "print('ok', s.stages[0].reference[0].weight, sorted(s.image_keys()), flush=True)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(python), "-c", script], input=json.dumps(spec), capture_output=True, text=True,
                            cwd=root, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 2)[:2] == ["ok", "0.6"] and "'reference'" in result.stdout
