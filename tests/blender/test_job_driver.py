"""The one job driver (``ui.job_operator.JobDriver``), fed by hand: timer ticks, job events, Esc, errors.

bpy as a module has no window, so no modal operator runs here; the driver is everything the modal
does besides moving timers and status bars. The jobs are worker threads running a runner the test
controls: each event waits for the test's tick before the next (``LockStep``), nothing waits on the clock.
"""

from __future__ import annotations

import threading

import bpy
import pytest

WAIT = 60  # seconds: only a broken driver ever waits this long


RUNNERS: list[LockStep] = []


@pytest.fixture(autouse=True)
def no_worker_outlives_its_test():
    """Every LockStep worker is let go and joined when its test ends, passed or failed: a worker left
    waiting on a tick would run on into later tests (and bpy crashes are hard enough to pin down)."""
    yield
    while RUNNERS:
        runner = RUNNERS.pop()
        runner.ticked.release(len(runner.events) + 1)
        for cancel in runner.cancels:
            cancel.set()
        for thread in runner.threads:
            thread.join(WAIT)
            assert not thread.is_alive(), "a job worker did not end"


class LockStep:
    """A job runner that sends ``events`` one at a time, each after the test has ticked the last."""

    def __init__(self, sc_module, events, files=(), fail=None, wait_for_cancel=False):
        RUNNERS.append(self)
        self.threads: list[threading.Thread] = []
        self.cancels: list[threading.Event] = []
        self.client = sc_module("core.client")
        self.remote_job = sc_module("core.remote_job")
        self.events, self.files, self.fail, self.wait_for_cancel = events, list(files), fail, wait_for_cancel
        self.sent = threading.Semaphore(0)
        self.ticked = threading.Semaphore(0)
        self.requests = []

    def __call__(self, request, on_event=None, cancel=None, on_status=None):
        self.requests.append(request)
        self.threads.append(threading.current_thread())
        if cancel is not None:
            self.cancels.append(cancel)
        for kind, data, *image in self.events:
            on_event(self.client.Event(kind, dict(data), image[0] if image else None))
            self.sent.release()
            assert self.ticked.acquire(timeout=WAIT)
        if self.wait_for_cancel:
            assert cancel.wait(WAIT)
            raise self.remote_job.JobFailed("the job was cancelled", None, status="cancelled")
        if self.fail is not None:
            raise self.fail
        return self.remote_job.JobOutcome(job_id=f"job-{len(self.requests)}", model="m", files=self.files, status={})

    def next_event(self, driver):
        """Wait until the worker sent one event, tick, let the worker go on; returns the tick's answer."""
        assert self.sent.acquire(timeout=WAIT), "the worker sent nothing"
        ending = driver.tick()
        self.ticked.release()
        return ending

    def finish(self, driver):
        """Wait for the worker thread to end, then tick: the outcome (or error) goes into the feature."""
        driver.job.thread.join(WAIT)
        return driver.tick()


def two_view_run(sc_module, scene, log):
    """A FeatureRun of two jobs with "view k/2" progress; ``log`` records what the feature saw."""
    base = sc_module("features.base")
    held = sc_module("blender.held")
    remote_job = sc_module("core.remote_job")
    progress = base.Progress(unit="view")

    def steps():
        try:
            for i in range(2):
                progress.set(i, 2, "generating")
                outcome = yield remote_job.JobRequest(params={}, units=[], images={}, name=f"view{i}", server="http://127.0.0.1:1", output_dir="")
                log.append(outcome.job_id)
            return "result"
        finally:
            log.append("cleaned up")

    return base.FeatureRun("Two Views", steps(), held.Held(scene, list(scene.objects), what="Two Views"), progress)


def driver_for(sc_module, run, runner):
    job_operator = sc_module("ui.job_operator")
    job_runner = sc_module("ui.job_runner")
    return job_operator.JobDriver(run, start_job=lambda request: job_runner.start(request, runner=runner))


@pytest.fixture
def cube_scene(empty_scene):
    mesh = bpy.data.meshes.new("Box")
    obj = bpy.data.objects.new("Box", mesh)
    empty_scene.collection.objects.link(obj)
    return empty_scene


def test_status_shows_queue_download_steps_and_the_view_for_every_feature(sc_module, cube_scene):
    events = [("queued", {"position": 2}), ("download", {"model": "m", "done": 1e6, "total": 2e6}),
              ("stage", {"index": 0, "stage": "generate"}), ("step", {"step": 1, "steps": 2}),
              ("step", {"step": 2, "steps": 2})]
    runner = LockStep(sc_module, events)
    log = []
    driver = driver_for(sc_module, two_view_run(sc_module, cube_scene, log), runner)
    assert driver.begin() is None
    seen = []
    for view in (1, 2):
        for _ in events:
            assert runner.next_event(driver) is None
            seen.append((driver.status, round(driver.fraction, 2)))
        ending = runner.finish(driver)
    assert seen[:5] == [("view 1/2: queued (position 2)", 0.0), ("view 1/2: downloading m: 1/2 MB", 0.0),
                        ("view 1/2: stage 1: generate", 0.0), ("view 1/2: step 1/2", 0.25),
                        ("view 1/2: step 2/2", 0.5)]
    assert seen[5][0] == "view 2/2: queued (position 2)" and seen[-1] == ("view 2/2: step 2/2", 1.0)
    assert ending.finished and ending.result == "result" and ending.status == "done"
    assert log == ["job-1", "job-2", "cleaned up"]


def test_esc_cancels_the_job_and_closes_the_feature(sc_module, cube_scene):
    runner = LockStep(sc_module, [("step", {"step": 1, "steps": 9})], wait_for_cancel=True)
    log = []
    driver = driver_for(sc_module, two_view_run(sc_module, cube_scene, log), runner)
    driver.begin()
    assert runner.next_event(driver) is None
    driver.escape()
    assert driver.status == "cancelling…" and driver.job.cancel.is_set()
    ending = runner.finish(driver)
    assert not ending.finished and ending.status == "cancelled"
    assert ending.reports == [("WARNING", "Scenecast: Two Views cancelled")]
    assert log == ["cleaned up"]


def test_a_job_error_goes_into_the_feature_and_ends_the_run_with_its_fix(sc_module, cube_scene):
    errors = sc_module("core.errors")
    runner = LockStep(sc_module, [], fail=errors.BackendError("the model ran out of memory", "use a smaller size"))
    log = []
    driver = driver_for(sc_module, two_view_run(sc_module, cube_scene, log), runner)
    driver.begin()
    ending = runner.finish(driver)
    assert not ending.finished and log == ["cleaned up"]
    assert ending.reports == [("ERROR", "the model ran out of memory. Fix: use a smaller size")]


def test_esc_between_jobs_stops_before_the_next_job(sc_module, cube_scene):
    runner = LockStep(sc_module, [])
    log = []
    driver = driver_for(sc_module, two_view_run(sc_module, cube_scene, log), runner)
    driver.begin()
    driver.job.thread.join(WAIT)
    driver.escape()  # the job had finished already: the feature gets its outcome, then stops
    ending = driver.tick()
    assert ending.status == "cancelled" and log == ["job-1", "cleaned up"] and len(runner.requests) == 1


@pytest.mark.parametrize("take_away", ["delete the object", "delete the scene", "load a file"])
def test_data_gone_mid_run_stops_with_a_message_saying_what(sc_module, cube_scene, take_away):
    runner = LockStep(sc_module, [("step", {"step": 1, "steps": 9})], wait_for_cancel=True)
    log = []
    driver = driver_for(sc_module, two_view_run(sc_module, cube_scene, log), runner)
    driver.begin()
    if take_away == "delete the object":
        bpy.data.objects.remove(bpy.data.objects["Box"])
        expected = "object 'Box' was deleted or undone away"
    elif take_away == "delete the scene":
        other = bpy.data.scenes.new("Other")
        bpy.context.window.scene = other
        bpy.data.scenes.remove(cube_scene)
        expected = "was deleted or undone away"
    else:
        bpy.ops.wm.read_homefile(use_empty=True, use_factory_startup=True)
        expected = "another file was loaded"
    ending = driver.tick()
    assert not ending.finished and expected in ending.status and "Two Views stopped" in ending.status
    assert driver.job.cancel.is_set(), "the job on the server is cancelled too"
    assert log == ["cleaned up"]
    runner.ticked.release()
    driver.job.thread.join(WAIT)


def test_nothing_starts_while_a_run_is_going_even_between_two_jobs(sc_module, cube_scene):
    """Between two frames of Stylize Frames no job runs, yet Generate must not start (it did)."""
    job_operator = sc_module("ui.job_operator")
    driver = driver_for(sc_module, two_view_run(sc_module, cube_scene, []), LockStep(sc_module, []))
    job_operator._active.append(driver)
    try:
        for op in (bpy.ops.scenecast.generate, bpy.ops.scenecast.stylize_frame, bpy.ops.scenecast.stylize_frames):
            assert not op.poll(), op
        assert bpy.ops.scenecast.cancel.poll()
        with pytest.raises(RuntimeError, match="poll.*already running"):  # the greyed-out button says why
            bpy.ops.scenecast.generate()
    finally:
        job_operator._active.clear()
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))  # Generate also needs a scene camera
    cube_scene.collection.objects.link(cam)
    cube_scene.camera = cam
    assert bpy.ops.scenecast.generate.poll()


def test_a_preview_event_reaches_the_preview_image(sc_module, cube_scene):
    import numpy as np

    png = sc_module("core.png")
    job_operator = sc_module("ui.job_operator")
    rgb = np.zeros((8, 16, 3), np.uint8)
    rgb[:, :8] = (255, 0, 0)
    runner = LockStep(sc_module, [("preview", {}, png.encode_png(rgb))])
    driver = driver_for(sc_module, two_view_run(sc_module, cube_scene, []), runner)
    driver.begin()
    assert runner.next_event(driver) is None
    image = job_operator.update_preview(driver.preview)
    assert image.name == job_operator.PREVIEW_IMAGE and tuple(image.size) == (16, 8)
    pixels = np.empty(16 * 8 * 4, np.float32)
    image.pixels.foreach_get(pixels)
    assert np.array_equal(np.rint(pixels.reshape(8, 16, 4)[::-1, :, :3] * 255).astype(np.uint8), rgb)
    runner.finish(driver)


def test_the_backend_starter_reads_no_bpy_on_its_worker_thread(sc_module, monkeypatch):
    backend_ops = sc_module("ui.operators.backend")
    settings = sc_module("blender.settings")
    prefs = settings.preferences()  # main thread: Blender's online access is read here
    calls = []
    monkeypatch.setattr(backend_ops.backend_process, "ensure_backend", lambda *a, **k: calls.append(k))

    class NoBpy:
        def __getattr__(self, name):
            raise AssertionError(f"bpy.{name} read on the worker thread")

    monkeypatch.setattr(backend_ops, "bpy", NoBpy())
    errors = []
    start = backend_ops.backend_starter(prefs)

    def work():
        try:
            start()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(WAIT)
    assert errors == [] and calls and calls[0]["offline"] is prefs.offline
