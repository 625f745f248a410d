"""The jobs layer under the server: event replay semantics, bounded retention, shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from backend.jobs.events import EventLog
from backend.jobs.queue import JobQueue, UnknownJob
from backend.models import ModelManager
from backend.pipelines import run_job
from backend.spec import JobSpec
from backend.testing.gates import EventGate, gated


def test_replay_keeps_every_event_but_only_the_latest_preview():
    log = EventLog()
    log.append("queued", position=0)
    log.append("preview", png=b"one", step=1)
    log.append("step", step=1)
    log.append("preview", png=b"two", step=2)
    log.append("step", step=2)
    replay = log.replay()
    assert [(e.seq, e.type) for e in replay] == [(1, "queued"), (3, "step"), (4, "preview"), (5, "step")]
    assert replay[2].png == b"two"


def test_a_subscriber_sees_each_event_once_across_replay_and_live():
    log = EventLog()
    seen: list[int] = []
    stop = threading.Event()

    def publisher():
        for i in range(2000):
            log.append("step", step=i)
        log.append("done")
        stop.set()

    t = threading.Thread(target=publisher)
    t.start()
    replay = log.subscribe(lambda e: seen.append(e.seq))  # races with the publisher on purpose
    t.join()
    all_seqs = [e.seq for e in replay] + seen
    assert all_seqs == list(range(1, 2002))


def test_events_cross_to_an_asyncio_loop_in_order():
    log = EventLog()

    async def consume():
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue = asyncio.Queue()
        log.subscribe(lambda e: loop.call_soon_threadsafe(inbox.put_nowait, e))
        threading.Thread(target=lambda: [log.append("step", step=i) for i in range(100)] + [log.append("done")]).start()
        got = []
        while not got or not got[-1].terminal:
            got.append(await asyncio.wait_for(inbox.get(), 10))
        return [e.seq for e in got]

    assert asyncio.run(consume()) == list(range(1, 102))


def test_a_failing_subscriber_does_not_break_the_publisher():
    log = EventLog()

    def broken(_):
        raise RuntimeError("loop closed")

    log.subscribe(broken)
    log.append("step", step=1)
    assert log.append("done").seq == 2


@pytest.fixture
def spec():
    return JobSpec.model_validate({"model": "builtin:tiny", "prompt": "p", "width": 64, "height": 64, "steps": 2,
                                   "stages": [{"type": "generate"}]})


def test_finished_jobs_are_kept_up_to_a_bound(tmp_path, spec):
    queue = JobQueue(run_job, ModelManager(device="cpu"), tmp_path, keep_finished=2)
    queue.start()
    try:
        jobs = [queue.submit(spec, {}, {}) for _ in range(3)]
        assert all(job.finished.wait(60) for job in jobs)
        assert [job.status for job in jobs] == ["done"] * 3
        with pytest.raises(UnknownJob):
            queue.get(jobs[0].id)
        assert queue.get(jobs[2].id) is jobs[2]
        assert jobs[0].images == {}  # inputs are freed when a job ends
    finally:
        queue.stop()


def test_stop_cancels_queued_and_running_jobs(tmp_path, spec):
    gate = EventGate(step=1)  # the running job waits after step 1 until released: stop() surely lands mid-job
    queue = JobQueue(gated(run_job, lambda s: gate if s.name == "held" else None), ModelManager(device="cpu"), tmp_path)
    queue.start()
    try:
        running = queue.submit(spec.model_copy(update={"name": "held", "steps": 4}), {}, {})
        waiting = queue.submit(spec, {}, {})
        assert gate.held.wait(60), "the first job never reached step 1"
        assert running.status == "running" and waiting.status == "queued"
        queue.stop()  # never releases the gate: only the cancel it sends can end the held job
        assert running.finished.wait(30) and waiting.finished.is_set()
        assert running.status == "cancelled" and waiting.status == "cancelled"
        assert [e.data["step"] for e in running.events.replay() if e.type == "step"] == [1]
        assert [e.type for e in waiting.events.replay()] == ["queued", "cancelled"]
    finally:
        gate.release()
        queue.stop()


def test_an_exception_in_the_pipeline_fails_only_that_job(tmp_path, spec):
    def runner(s, images, models, progress):  # the real pipeline, except for jobs named "boom"
        if s.name == "boom":
            raise RuntimeError("out of cheese")
        return run_job(s, images, models, progress)

    queue = JobQueue(runner, ModelManager(device="cpu"), tmp_path)
    queue.start()
    try:
        bad = queue.submit(spec.model_copy(update={"name": "boom"}), {}, {})
        good = queue.submit(spec, {}, {})
        assert bad.finished.wait(60) and good.finished.wait(60)
        assert bad.status == "failed" and good.status == "done"
        last = bad.events.replay()[-1]
        assert last.type == "failed" and last.data["error"]["code"] == "pipeline_error"
        assert "out of cheese" in last.data["error"]["message"] and last.data["error"]["fix"]
    finally:
        queue.stop()


def test_unwritable_output_fails_the_job_with_a_fix(tmp_path, spec):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    queue = JobQueue(run_job, ModelManager(device="cpu"), blocker)
    queue.start()
    try:
        job = queue.submit(spec, {}, {})
        assert job.finished.wait(60) and job.status == "failed"
        assert job.error["code"] == "output_error" and str(blocker) in job.error["fix"]
        assert job.results == [] and job.record is None
    finally:
        queue.stop()
