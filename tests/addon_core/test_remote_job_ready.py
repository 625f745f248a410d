"""``run_job`` hands results over at protocol 1.1's ``ready`` and saves the PNGs in the background.

Against fake_backend.py, whose "hold" jobs write their PNG only when the test says so (the real backend
has no gate between ``ready`` and its PNG write), and the real backend for the bytes it really writes.
No test here reads a clock: a job that must still be writing its PNG is held by the test; a timeout
given to ``run_job`` only turns a wrong wait into a failure instead of a hang.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from addon.core import png, remote_job
from addon.core.client import BackendClient
from addon.core.errors import JobCancelled, JobFailed, ScenecastError, WaitTimeout

sys.path.insert(0, str(Path(__file__).parent))
from fake_backend import FakeBackend  # noqa: E402
from real_backend import real_backend  # noqa: E402

#: What the fake's jobs make (fake_backend.FakeJob.run): 8x8, not flat.
EXPECTED = np.full((8, 8, 3), 200, np.uint8)
EXPECTED[2:6, 1:7] = np.arange(72, dtype=np.uint8).reshape(4, 6, 3) * 3
GUARD = 60.0  # seconds: only a wrong implementation (waiting for what never comes) ever reaches it


@pytest.fixture
def fake():
    srv = FakeBackend(raw_results=True)
    yield srv
    srv.stop()


def _request(url: str, out: Path, script: str = "ok", **kw: Any) -> remote_job.JobRequest:
    depth = np.zeros((8, 8, 3), np.uint8)
    depth[2:6, 2:6] = 200
    kw.setdefault("timeout", GUARD)
    return remote_job.JobRequest(
        server=url, params=dict(prompt="a box", seed=3, steps=3, width=64, height=64, name=script),
        units=[{"image": "depth", "type": "depth", "weight": 1.0}], images={"depth": depth},
        output_dir=str(out), name="ready test", model="builtin:tiny", auto_start=False, **kw,
    )


def _savers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("scenecast-save-")]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_pixels_come_at_ready_before_the_png_is_written_and_the_file_follows(fake: FakeBackend, tmp_path: Path) -> None:
    events: list[str] = []
    outcome = remote_job.run_job(_request(fake.url, tmp_path, "hold"), on_event=lambda e: events.append(e.type))
    job = fake.jobs[outcome.job_id]
    # The backend has not written its PNG (it waits for the test): the pixels came without it.
    assert not job.png_gate.is_set() and job.results == [] and job.status == "running"
    assert len(outcome.pixels) == 1 and np.array_equal(outcome.image(0), EXPECTED)
    assert outcome.image(0).dtype == np.uint8 and outcome.image(0).shape == (8, 8, 3)
    assert events[-1] == "ready" and "done" not in events  # events up to the hand-over, in this thread
    path = Path(outcome.files[0])
    assert path.parent == tmp_path and path.name == f"ready_test_{outcome.job_id[:12]}_00.png"
    assert outcome.files_pending and not path.exists() and outcome.status["status"] == "running"

    job.release_png()
    assert outcome.wait_files() == [str(path)]
    assert path.read_bytes() == job.results[0]  # the backend's own bytes, text chunks and all
    assert png.read_png_text(path.read_bytes()) == {"seed": "7"}
    assert np.array_equal(png.decode_png(path.read_bytes()), outcome.image(0))
    assert outcome.status["status"] == "done"
    assert outcome.status["results"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not outcome.files_pending and _leftovers(tmp_path) == [path.name]  # no .part left
    assert _savers() == []


def test_a_backend_without_ready_still_gives_pixels_and_files_at_done(tmp_path: Path) -> None:
    srv = FakeBackend(ready_events=False)  # protocol 1.0: PNG only, no `ready`
    try:
        events: list[str] = []
        outcome = remote_job.run_job(_request(srv.url, tmp_path), on_event=lambda e: events.append(e.type))
        assert events[-1] == "done" and "ready" not in events
        assert not outcome.files_pending and outcome.saver is None  # written before run_job returned
        data = Path(outcome.files[0]).read_bytes()
        assert data == srv.jobs[outcome.job_id].results[0]
        assert np.array_equal(outcome.image(0), EXPECTED) and outcome.wait_files() == outcome.files
        assert not any("image/x-scenecast-pixels" in h.get("Accept", "") for _, _, h in srv.requests)
    finally:
        srv.stop()


def test_a_backend_that_announces_ready_but_offers_no_raw_pixels_is_followed_to_done(tmp_path: Path) -> None:
    srv = FakeBackend()  # sends `ready`, but PNG only: results exist for it from `done` on
    try:
        outcome = remote_job.run_job(_request(srv.url, tmp_path))
        assert outcome.status["status"] == "done" and not outcome.files_pending
        assert np.array_equal(outcome.image(0), EXPECTED)
        assert Path(outcome.files[0]).read_bytes() == srv.jobs[outcome.job_id].results[0]
    finally:
        srv.stop()


def test_pixels_the_backend_no_longer_holds_come_from_the_png(fake: FakeBackend, tmp_path: Path) -> None:
    def release_once_refused() -> None:
        (job,) = fake.jobs.values()
        job.refused_raw.wait()  # the raw request was answered 409: now let the PNG be written
        job.release_png()

    events: list[str] = []

    def on_event(event: Any) -> None:
        events.append(event.type)
        if event.type == "ready":
            threading.Thread(target=release_once_refused, daemon=True).start()

    outcome = remote_job.run_job(_request(fake.url, tmp_path, "hold_evicted"), on_event=on_event)
    assert events[-1] == "ready" and not outcome.files_pending  # waited for the PNG this once
    assert outcome.pixels == [] and np.array_equal(outcome.image(0), EXPECTED)  # decoded from it
    assert Path(outcome.files[0]).read_bytes() == fake.jobs[outcome.job_id].results[0]


def test_a_failed_save_after_ready_is_reported_with_the_backends_fix(fake: FakeBackend, tmp_path: Path) -> None:
    outcome = remote_job.run_job(_request(fake.url, tmp_path, "hold_fail"))
    assert np.array_equal(outcome.image(0), EXPECTED)  # the pixels came
    fake.jobs[outcome.job_id].release_png()  # ... then the backend's disk is full
    with pytest.raises(JobFailed) as info:
        outcome.wait_files()
    assert "could not save" in info.value.message and "No space left" in info.value.message
    assert info.value.fix == "check that outputs/ is writable and has space" and info.value.code == "output_error"
    with pytest.raises(JobFailed):  # asked again: the same answer, never a silent success
        outcome.wait_files()
    assert _leftovers(tmp_path) == [] and _savers() == []


def test_a_local_disk_error_names_the_output_folder(fake: FakeBackend, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"a file where the output folder should be")
    outcome = remote_job.run_job(_request(fake.url, blocker))
    fake.jobs[outcome.job_id].release_png()
    with pytest.raises(ScenecastError) as info:
        outcome.wait_files()
    assert str(blocker) in info.value.message and "Output Folder" in info.value.fix
    assert _leftovers(tmp_path) == ["not-a-folder"]


def test_the_backend_going_away_before_the_png_is_reported(fake: FakeBackend, tmp_path: Path) -> None:
    outcome = remote_job.run_job(_request(fake.url, tmp_path, "hold"))
    fake.stop()
    with pytest.raises(JobFailed) as info:
        outcome.wait_files()
    assert "stopped answering" in info.value.message and "restart the backend" in info.value.fix
    assert _leftovers(tmp_path) == [] and _savers() == []


def test_discard_stops_saving_and_no_file_appears_later(fake: FakeBackend, tmp_path: Path) -> None:
    outcome = remote_job.run_job(_request(fake.url, tmp_path, "hold"))
    assert _savers() == [] and outcome.files_pending  # deferred: no thread until a next job waits
    outcome.discard()  # the run failed or was cancelled: it will never start
    assert _savers() == []
    job = fake.jobs[outcome.job_id]
    job.release_png()
    BackendClient(fake.url).wait(outcome.job_id)  # the backend wrote its PNG: nobody fetches it
    assert job.status == "done" and _leftovers(tmp_path) == []
    with pytest.raises(JobCancelled):
        outcome.wait_files()


def test_a_cancel_after_ready_still_saves_the_finished_jobs_files(fake: FakeBackend, tmp_path: Path) -> None:
    """A run cancelled during its next job keeps what this one made (a frame sequence keeps the frame);
    only the feature's discard() stops a save."""
    cancel = threading.Event()
    outcome = remote_job.run_job(_request(fake.url, tmp_path, "hold"), cancel=cancel)
    cancel.set()
    fake.jobs[outcome.job_id].release_png()
    assert Path(outcome.wait_files()[0]).read_bytes() == fake.jobs[outcome.job_id].results[0]
    assert _savers() == []


def test_pending_files_wait_for_every_outcome_and_discard_is_a_no_op_after(fake: FakeBackend, tmp_path: Path) -> None:
    saving = remote_job.PendingFiles()
    first = saving.add(remote_job.run_job(_request(fake.url, tmp_path, "hold")))
    second = saving.add(remote_job.run_job(_request(fake.url, tmp_path, "hold")))
    for outcome in (first, second):
        fake.jobs[outcome.job_id].release_png()
    assert saving.wait() == first.files + second.files
    saving.discard()
    assert all(os.path.isfile(p) for p in first.files + second.files)


def test_cancel_before_ready_cancels_the_job_on_the_server_as_before(fake: FakeBackend, tmp_path: Path) -> None:
    cancel = threading.Event()

    def on_event(event: Any) -> None:
        if event.type == "started":
            cancel.set()  # the gated job waits before step 1 until released or cancelled

    with pytest.raises(JobCancelled):
        remote_job.run_job(_request(fake.url, tmp_path, "gated"), on_event=on_event, cancel=cancel)
    (job,) = fake.jobs.values()
    assert job.status == "cancelled" and any(p.endswith("/cancel") for _, p, _ in fake.requests)
    assert _leftovers(tmp_path) == [] and _savers() == []


def test_a_timeout_before_ready_leaves_the_job_running_as_before(fake: FakeBackend, tmp_path: Path) -> None:
    with pytest.raises(WaitTimeout):
        remote_job.run_job(_request(fake.url, tmp_path, "gated", timeout=0.3))  # never released: never ready
    (job,) = fake.jobs.values()
    assert job.status == "running" and not any(p.endswith("/cancel") for _, p, _ in fake.requests)
    job.request_cancel()


def test_a_broken_stream_before_ready_falls_back_to_polling_and_still_gives_results(fake: FakeBackend,
                                                                                   tmp_path: Path) -> None:
    outcome = remote_job.run_job(_request(fake.url, tmp_path, "drop"))  # the stream breaks at step 2
    assert np.array_equal(outcome.image(0), EXPECTED)
    assert Path(outcome.wait_files()[0]).read_bytes() == fake.jobs[outcome.job_id].results[0]


def test_the_real_backend_hands_pixels_over_at_ready_and_writes_its_exact_png(tmp_path: Path) -> None:
    url = real_backend().url
    depth = np.zeros((64, 64, 3), np.uint8)
    depth[16:48, 16:48] = 200
    req = remote_job.JobRequest(
        server=url, params=dict(prompt="a box", seed=3, steps=2, width=64, height=64),
        units=[{"image": "depth", "type": "depth", "weight": 1.0}], images={"depth": depth},
        output_dir=str(tmp_path), name="real ready", model="builtin:tiny", auto_start=False, timeout=GUARD)
    events: list[str] = []
    outcome = remote_job.run_job(req, on_event=lambda e: events.append(e.type))
    assert events[-1] == "ready" and outcome.saver is not None  # taken at `ready`, the PNG saved after
    pixels = outcome.image(0)
    files = outcome.wait_files()
    data = Path(files[0]).read_bytes()
    assert Path(files[0]).name == f"real_ready_{outcome.job_id[:12]}_00.png"
    assert data == BackendClient(url).result(outcome.job_id, 0)  # what the old path wrote: the server's bytes
    assert hashlib.sha256(data).hexdigest() == outcome.status["results"][0]["sha256"]
    assert "a box" in png.read_png_text(data)["parameters"]
    assert pixels.shape == (64, 64, 3) and np.array_equal(png.decode_png(data), pixels)


def test_a_saver_runs_while_the_next_job_waits_and_never_after_run_job_returns(fake: FakeBackend,
                                                                                tmp_path: Path) -> None:
    """Blender's rule for Python threads: only while the main thread is blocked. A view's PNG is saved
    during the next view's job (the overlap), by a thread joined before that run_job returns."""
    first = remote_job.run_job(_request(fake.url, tmp_path, "hold"))
    assert _savers() == [] and not Path(first.files[0]).exists()
    fake.jobs[first.job_id].release_png()
    second = remote_job.run_job(_request(fake.url, tmp_path, "hold"))
    assert _savers() == []  # joined before run_job returned
    assert not first.files_pending and Path(first.files[0]).read_bytes() == fake.jobs[first.job_id].results[0]
    assert second.files_pending  # its turn comes with the next job, or with wait_files
    fake.jobs[second.job_id].release_png()
    assert Path(second.wait_files()[0]).read_bytes() == fake.jobs[second.job_id].results[0]
    assert _savers() == []


def test_waiting_on_a_saver_that_a_returning_run_job_pauses_goes_on_saving(fake: FakeBackend, tmp_path: Path) -> None:
    """wait_files in one thread while another thread's run_job ends (and pauses the savers it started):
    the saver is deferred again and the waiting thread runs it to the end."""
    from addon.core import result_saver

    outcome = remote_job.run_job(_request(fake.url, tmp_path, "hold"))
    started = result_saver.start_deferred()  # as the next run_job does after its submit
    assert [s.job_id for s in started] == [outcome.job_id]
    waited: list[object] = []
    waiter = threading.Thread(target=lambda: waited.append(outcome.wait_files(GUARD)))
    waiter.start()
    result_saver.join(started)  # that run_job returns: the PNG is still held, so the saver pauses
    fake.jobs[outcome.job_id].release_png()
    waiter.join(GUARD)
    assert waited == [outcome.files] and Path(outcome.files[0]).is_file() and _savers() == []
