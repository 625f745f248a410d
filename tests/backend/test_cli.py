"""``python -m backend generate|models``: spec files with images beside them, in-process and on a server."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _server import ROOT, shared_server
from backend.cli import CliError, main
from backend.cli_generate import load_spec_file
from backend.loopback import is_loopback_name as is_loopback
from backend.spec import JobSpec

EXAMPLE = ROOT / "examples" / "boxes.json"


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("SCENECAST_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "backend", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def small_spec(tmp_path: Path) -> Path:
    """The example at 64x64 and 2 steps; its control images copied beside it (edges under the default name)."""
    data = json.loads(EXAMPLE.read_text())
    data.update(width=64, height=64, steps=2, preview_every=0)
    data["images"] = {"depth": "boxes-depth.png"}  # "edges" falls back to edges.png beside the spec
    shutil.copy(EXAMPLE.parent / "boxes-depth.png", tmp_path / "boxes-depth.png")
    shutil.copy(EXAMPLE.parent / "boxes-edges.png", tmp_path / "edges.png")
    path = tmp_path / "small.json"
    path.write_text(json.dumps(data))
    return path


def test_the_example_names_depth_and_edge_images_that_sit_beside_it():
    data, images = load_spec_file(EXAMPLE, model="builtin:tiny")
    spec = JobSpec.model_validate(data)
    assert spec.model == "builtin:tiny"
    assert {u.type for u in spec.stages[0].controlnets} == {"depth", "edges"}
    assert set(images) == {"depth", "edges"} and all(p.parent == EXAMPLE.parent and p.is_file() for p in images.values())
    depth = np.asarray(Image.open(images["depth"]))
    assert depth.max() > 0 and depth[0, 0] == 0  # near = bright, background (sky at the top) black


def test_model_override_applies_to_every_stage(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"model": "a", "prompt": "p", "stages": [
        {"type": "generate", "model": "b"}, {"type": "img2img", "model": "c", "strength": 0.3}]}))
    data, _ = load_spec_file(tmp_path / "s.json", model="builtin:tiny")
    spec = JobSpec.model_validate(data)
    assert {spec.resolved(s, "model") for s in spec.stages} == {"builtin:tiny"}


def test_spec_file_can_start_from_a_preset(tmp_path):
    for key in ("depth", "edges"):
        shutil.copy(EXAMPLE.parent / f"boxes-{key}.png", tmp_path / f"{key}.png")
    (tmp_path / "s.json").write_text(json.dumps({"preset": "texture-depth-edges", "model": "m", "prompt": "p",
                                                 "steps": 3}))
    data, images = load_spec_file(tmp_path / "s.json")
    spec = JobSpec.model_validate(data)
    assert spec.steps == 3 and spec.scheduler == "dpmpp_2m_karras" and set(images) == {"depth", "edges"}
    (tmp_path / "bad.json").write_text(json.dumps({"preset": "nope", "stages": []}))
    with pytest.raises(CliError, match="unknown preset 'nope'"):
        load_spec_file(tmp_path / "bad.json")


def test_missing_image_file_is_named(small_spec):
    (small_spec.parent / "edges.png").unlink()
    proc = cli("generate", str(small_spec), "--model", "builtin:tiny", "--out", str(small_spec.parent / "out"))
    assert proc.returncode == 2
    assert "image 'edges' should be at" in proc.stderr and "edges.png" in proc.stderr


def check_outputs(paths: list[Path], spec_dir: Path) -> np.ndarray:
    pngs = [p for p in paths if p.suffix == ".png"]
    records = [p for p in paths if p.suffix == ".json"]
    assert len(pngs) == 1 and len(records) == 1 and all(p.is_file() for p in paths)
    record = json.loads(records[0].read_text())
    assert record["inputs"] == {"depth": hashlib.sha256((spec_dir / "boxes-depth.png").read_bytes()).hexdigest(),
                                "edges": hashlib.sha256((spec_dir / "edges.png").read_bytes()).hexdigest()}
    assert record["spec"]["model"] == "builtin:tiny" and "images" not in record["spec"]
    with Image.open(pngs[0]) as im:
        assert im.size == (64, 64) and "Model: builtin:tiny" in im.text["parameters"]
        return np.asarray(im).copy()


def test_generate_in_process_and_on_a_server_give_the_same_pixels(small_spec, tmp_path, capsys):
    # In this process (torch is already imported here: a subprocess would spend seconds importing it again).
    assert main(["generate", str(small_spec), "--model", "builtin:tiny", "--out", str(tmp_path / "local"),
                 "--device", "cpu", "--threads", "1"]) == 0
    local_pixels = check_outputs([Path(line) for line in capsys.readouterr().out.split()], small_spec.parent)

    server = shared_server()
    remote = cli("generate", str(small_spec), "--model", "builtin:tiny", "--out", str(tmp_path / "remote"),
                 "--server", server.url, "--token", server.token)
    assert remote.returncode == 0, remote.stderr
    assert "stage 0 (generate, 2 steps)" in remote.stderr and "done" in remote.stderr
    remote_pixels = check_outputs([Path(line) for line in remote.stdout.split()], small_spec.parent)
    assert np.array_equal(local_pixels, remote_pixels)


def test_generate_on_a_server_reports_its_refusal(small_spec, tmp_path):
    server = shared_server()
    proc = cli("generate", str(small_spec), "--model", "no/such-model", "--out", str(tmp_path),
               "--server", server.url, "--token", server.token)
    assert proc.returncode == 2 and "no/such-model" in proc.stderr and "fix:" in proc.stderr
    proc = cli("generate", str(small_spec), "--out", str(tmp_path), "--server", server.url)
    assert proc.returncode == 2 and "token" in proc.stderr


def test_models_lists_the_builtin_models(capsys):
    assert main(["models", "--json", "--device", "cpu"]) == 0
    ids = {m["id"] for m in json.loads(capsys.readouterr().out)}
    assert {"builtin:tiny", "builtin:tiny-controlnet-depth"} <= ids


def test_loopback_detection():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.2", "example.com"))
