"""Running a job without Blender: model choice, atomic result files, and a real backend round trip."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from addon.core import png, remote_job
from addon.core.client import BackendClient
from addon.core.errors import BackendUnavailable

sys.path.insert(0, str(Path(__file__).parent))
from real_backend import real_backend  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_write_atomic_writes_exact_bytes_and_leaves_nothing_on_a_type_error(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    remote_job.write_atomic(str(target), b"\x89PNG exact")
    assert target.read_bytes() == b"\x89PNG exact"
    with pytest.raises(TypeError):
        remote_job.write_atomic(str(tmp_path / "b.png"), "not bytes")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_offline_reads_hf_hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert remote_job.offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not remote_job.offline()


def test_no_backend_and_no_auto_start_names_the_fix(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    req = remote_job.JobRequest(server=url, params={}, units=[], images={}, output_dir=str(tmp_path),
                                auto_start=False)
    with pytest.raises(BackendUnavailable) as info:
        remote_job.run_job(req)
    assert url in info.value.message
    assert "Start Local Backend Automatically" in info.value.fix
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def server() -> str:
    """The session's real backend on builtin:tiny (skips when this machine has no backend Python)."""
    return real_backend().url


def _request(url: str, out: Path, **kw) -> remote_job.JobRequest:
    depth = np.zeros((64, 64, 3), np.uint8)
    depth[16:48, 16:48] = 200
    params = dict(prompt="a box", seed=3, steps=2, width=64, height=64)
    return remote_job.JobRequest(
        server=url, params=params, units=[{"image": "depth", "type": "depth", "weight": 1.0}],
        images={"depth": png.encode_png(depth), "normal": png.encode_png(depth)}, output_dir=str(out),
        name="core test", auto_start=False, **kw,
    )


def test_offline_default_model_falls_back_to_builtin_tiny_and_says_so(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    client = BackendClient(server)
    model, note = remote_job.choose_model(client, None, SD15)
    assert model == remote_job.OFFLINE_MODEL and note and SD15 in note and "HF_HUB_OFFLINE" in note
    assert remote_job.choose_model(client, "builtin:tiny", SD15) == ("builtin:tiny", None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert remote_job.choose_model(client, None, SD15) == (SD15, None)  # online: the backend downloads it
    # Blender's "Allow Online Access" off counts as offline, whatever the environment says.
    assert remote_job.choose_model(client, None, SD15, no_network=True)[0] == remote_job.OFFLINE_MODEL


def test_a_backend_started_without_online_access_is_started_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The started process gets HF_HUB_OFFLINE=1; seen through a stand-in Python that prints its env."""
    from addon.core import backend_process

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    seen = tmp_path / "env.txt"
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\necho \"$HF_HUB_OFFLINE\" > {seen}\n")
    fake.chmod(0o755)
    backend = backend_process.LocalBackend(python=str(fake), port=1, log_path=str(tmp_path / "log"), offline=True)
    backend.start()
    assert backend.process is not None and backend.process.wait(10) == 0
    assert seen.read_text().strip() == "1"


def test_run_job_writes_the_exact_result_bytes(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    events: list[str] = []
    previous = os.umask(0o022)
    try:
        outcome = remote_job.run_job(_request(server, tmp_path, default_model=SD15),
                                     on_event=lambda e: events.append(e.type))
        outcome.wait_files()  # written in the background after `ready`, under this umask
    finally:
        os.umask(previous)
    if os.name != "nt":  # a result others may read, like any file the user's programs write (not 0600)
        assert stat.S_IMODE(os.stat(outcome.files[0]).st_mode) == 0o644
    assert outcome.model == "builtin:tiny" and any("builtin:tiny" in n for n in outcome.notes)
    assert len(outcome.files) == 1
    path = Path(outcome.files[0])
    assert path.parent == tmp_path and path.name.startswith("core_test_")
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == outcome.status["results"][0]["sha256"]
    assert png.decode_png(data).shape[:2] == (64, 64)
    assert "a box" in " ".join(png.read_png_text(data).values())
    assert events[-1] == "ready" and "step" in events  # the results were handed over at `ready`
    # Only the images the spec names were sent: the job's record lists depth alone, with its hash.
    record = BackendClient(server).record(outcome.job_id)
    depth_png = _request(server, tmp_path).images["depth"]
    assert record["inputs"] == {"depth": hashlib.sha256(depth_png).hexdigest()}


def test_a_preset_needing_an_image_we_did_not_make_is_refused_before_submitting(server: str, tmp_path: Path) -> None:
    req = _request(server, tmp_path, model="builtin:tiny")
    req.units = [{"image": "color", "type": "depth"}]
    with pytest.raises(remote_job.ScenecastError) as info:
        remote_job.run_job(req)
    assert "color" in info.value.message
    assert list(tmp_path.iterdir()) == []
