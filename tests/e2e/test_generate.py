"""The installed add-on in real Blender against a real backend process: generate, block, start, fail, cancel."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from e2e_support import ADDON_MODULE, backend_python, free_port, healthy, scene_state

bpy = pytest.importorskip("bpy")

TINY = dict(model="builtin:tiny", width=64, height=64, steps=2, seed=7)
UNITS = [{"type": "depth", "weight": 1.0, "start": 0.0, "end": 1.0},
         {"type": "edges", "weight": 0.6, "start": 0.0, "end": 0.8}]


def addon_module(name: str):
    """A module of the installed add-on, e.g. ``addon_module("core.errors")``."""
    return importlib.import_module(f"{ADDON_MODULE}.{name}")


def test_generate_returns_saved_images_with_the_backends_metadata(api, backend, scene, tmp_path):
    seen: list[str] = []
    images = api.generate(scene, prompt="a rainy street", server=backend.url, units=UNITS,
                          on_event=lambda e: seen.append(e.type), **TINY)
    assert len(images) == 1
    image = images[0]
    assert isinstance(image, bpy.types.Image)
    path = Path(bpy.path.abspath(image.filepath))
    assert path.is_file() and path.parent == tmp_path / "results"
    assert tuple(image.size) == (64, 64)
    data = path.read_bytes()
    png = addon_module("core.png")
    # The exact bytes the backend served: same hash as the job status reports, text chunks intact.
    job_id = image["scenecast_job"]
    with urllib.request.urlopen(f"{backend.url}/v1/jobs/{job_id}") as response:
        status = json.loads(response.read())
    assert status["status"] == "done"
    assert hashlib.sha256(data).hexdigest() == status["results"][0]["sha256"]
    text = png.read_png_text(data)
    assert text, "the result lost the backend's PNG metadata"
    assert "a rainy street" in " ".join(text.values())
    assert seen[-1] == "ready" and "step" in seen  # results handed over at `ready` (protocol 1.1), files after
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]


def test_operator_blocks_in_background_and_produces_images(scenecast, backend, scene, prefs):
    assert bpy.app.background
    prefs.server_url = backend.url
    s = scene.scenecast
    s.prompt, s.model, s.width, s.height, s.steps, s.seed = "a quiet alley", "builtin:tiny", 64, 64, 2, 3
    unit = s.units.add()
    unit.type = "depth"
    before = {i.name for i in bpy.data.images}
    window_scene = bpy.context.window.scene if bpy.context.window else None
    with bpy.context.temp_override(scene=scene):
        result = bpy.ops.scenecast.generate()
    assert result == {"FINISHED"}
    new = [i for i in bpy.data.images if i.name not in before]
    assert len(new) == 1 and new[0].get("scenecast_job")
    assert os.path.isfile(bpy.path.abspath(new[0].filepath))
    assert (bpy.context.window.scene if bpy.context.window else None) == window_scene


def test_no_backend_and_no_auto_start_says_how_to_fix_it(api, scene, prefs):
    prefs.auto_start = False
    url = f"http://127.0.0.1:{free_port()}"
    before = scene_state(scene)
    errors = addon_module("core.errors")
    with pytest.raises(errors.ScenecastError) as info:
        api.generate(scene, prompt="x", server=url, units=UNITS, **TINY)
    assert url in info.value.message
    assert "Start Local Backend Automatically" in info.value.fix and "python -m backend serve" in info.value.fix
    assert scene_state(scene) == before
    # The operator reports the same error (bpy.ops turns an ERROR report into RuntimeError).
    prefs.server_url = url
    scene.scenecast.prompt = "x"
    with bpy.context.temp_override(scene=scene), pytest.raises(RuntimeError, match="Start Local Backend"):
        bpy.ops.scenecast.generate()


def test_auto_start_runs_the_local_backend_and_unregister_stops_it(api, scene, prefs, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    prefs.server_url, prefs.auto_start, prefs.backend_python = url, True, backend_python()
    images = api.generate(scene, prompt="a lamp post", units=UNITS[:1], **TINY)
    assert len(images) == 1 and healthy(url)
    backend_process = addon_module("core.backend_process")
    started = backend_process.started_backend(url)
    assert started is not None and started.running()
    # Disabling the add-on (as on quit) stops the backend it started.
    bpy.ops.preferences.addon_disable(module=ADDON_MODULE)
    try:
        assert not started.running() and not healthy(url)
    finally:
        bpy.ops.preferences.addon_enable(module=ADDON_MODULE)


def test_backend_killed_mid_job_fails_the_job_and_leaves_the_scene(api, own_backend, scene):
    before = scene_state(scene)

    def kill_on_first_step(event) -> None:
        if event.type == "step" and own_backend.process.poll() is None:
            own_backend.process.kill()

    with pytest.raises(api.JobFailed) as info:
        api.generate(scene, prompt="x", server=own_backend.url, units=UNITS, on_event=kill_on_first_step,
                     **{**TINY, "steps": 150, "width": 128, "height": 128}, timeout=60)
    assert info.value.status == "failed"
    assert "backend" in info.value.message and info.value.fix
    assert scene_state(scene) == before
    # Blender keeps going: the scene still renders passes.
    passes = api.extract_passes(scene, resolution=(64, 64))
    assert passes.control["depth"].shape == (64, 64, 3)


def test_cancel_mid_job_cancels_on_the_server(api, backend, scene):
    cancel = threading.Event()
    before = scene_state(scene)

    def cancel_on_first_step(event) -> None:
        if event.type == "step":
            cancel.set()

    with pytest.raises(api.JobFailed) as info:
        api.generate(scene, prompt="x", server=backend.url, units=UNITS, on_event=cancel_on_first_step,
                     cancel=cancel, **{**TINY, "steps": 150, "width": 128, "height": 128}, timeout=60)
    assert info.value.status == "cancelled"
    job_id = info.value.job_id
    with urllib.request.urlopen(f"{backend.url}/v1/jobs/{job_id}") as response:
        assert json.loads(response.read())["status"] == "cancelled"
    assert scene_state(scene) == before


def test_the_job_driver_runs_generate_in_a_worker_with_status_and_previews(scenecast, backend, scene, prefs):
    """What the modal Generate operator does per timer tick, driven by hand (bpy as a module has no event
    loop for the modal): the job runs in the worker thread while the main thread keeps using bpy;
    status, previews and results are brought to bpy on the main thread. The worker waits for the test's
    tick after each event and status (lock step), so every status is seen and nothing waits on the clock."""
    job_operator = addon_module("ui.job_operator")
    job_runner = addon_module("ui.job_runner")
    remote_job = addon_module("core.remote_job")
    generate = addon_module("features.generate")
    settings = addon_module("features.settings")
    sent, ticked, last = threading.Semaphore(0), threading.Semaphore(0), []

    def lock_step(request, on_event=None, on_status=None, **kwargs):
        def relay(handler):
            def handle(item):
                handler(item)
                last[:] = [item]
                sent.release()
                assert ticked.acquire(timeout=120), "the test stopped ticking"
            return handle
        return remote_job.run_job(request, on_event=relay(on_event), on_status=relay(on_status), **kwargs)

    job = settings.resolve(scene, prompt="x", server=backend.url, units=UNITS[:1], preview_every=1,
                           **{**TINY, "steps": 4})
    driver = job_operator.JobDriver(generate.generate(scene, job), start_job=lambda r: job_runner.start(r, runner=lock_step))
    assert driver.begin() is None
    statuses, previews, preview = [], 0, None
    while True:
        assert sent.acquire(timeout=120), "the worker sent nothing"
        assert driver.tick() is None
        statuses.append(driver.status)
        if driver.preview is not None:
            preview, driver.preview = driver.preview, None
            image = job_operator.update_preview(preview)
            previews += 1
        bpy.data.meshes.remove(bpy.data.meshes.new("main thread stays usable"))  # while the job waits
        done = getattr(last[0], "type", None) == "ready"  # the results' hand-over: the worker's last event
        ticked.release()
        if done:
            break
    driver.job.thread.join(120)
    ending = driver.tick()
    assert statuses[0] == f"submitting to {backend.url} (builtin:tiny)"
    steps = [s for s in statuses if s.startswith("step")]  # a preview after a step keeps the step's status
    assert list(dict.fromkeys(steps)) == [f"step {i}/4" for i in range(1, 5)]
    assert previews >= 1 and image.name == job_operator.PREVIEW_IMAGE
    # The preview image holds the last preview's pixels (Blender's rows run bottom-up, floats).
    h, w = preview.shape[:2]
    assert tuple(image.size) == (w, h)
    pixels = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    shown = np.rint(pixels.reshape(h, w, 4)[::-1, :, :3] * 255).astype(np.uint8)
    assert np.array_equal(shown, preview[..., :3])
    assert ending.finished and ending.status == "done"
    images = ending.result.images
    assert len(images) == 1 and os.path.isfile(bpy.path.abspath(images[0].filepath))
    assert images[0]["scenecast_job"] == ending.result.outcome.job_id


def test_a_backend_speaking_another_protocol_is_refused_with_the_fix(api, scene, tmp_path):
    """A stand-in for a newer backend: a plain HTTP server whose /v1/health says protocol 99."""
    import http.server

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            body = json.dumps({"status": "ok", "version": "9.0.0", "protocol": 99}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        errors = addon_module("core.errors")
        with pytest.raises(errors.ProtocolMismatch) as info:
            api.generate(scene, prompt="x", server=f"http://127.0.0.1:{server.server_port}", units=UNITS, **TINY)
        assert "protocol 99" in info.value.message and "update the Scenecast add-on" in info.value.fix
    finally:
        server.shutdown()
    assert not (tmp_path / "results").exists()
