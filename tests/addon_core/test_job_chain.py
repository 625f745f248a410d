import threading

import pytest

from addon.core.job_chain import run_blocking
from addon.core.remote_job import JobFailed, JobOutcome, JobRequest


def request(name: str) -> JobRequest:
    return JobRequest(server="http://127.0.0.1:1", params={}, units=[], images={}, output_dir="/tmp", name=name)


def runner_log(log, fail_on=None, cancel_after=None):
    def run(req, on_event=None, cancel=None, on_status=None):
        log.append(req.name)
        if req.name == fail_on:
            raise JobFailed(f"{req.name} failed", "fix it")
        if cancel_after == req.name and cancel is not None:
            cancel.set()
        return JobOutcome(job_id=f"id-{req.name}", model="builtin:tiny", files=[f"{req.name}.png"], status={})
    return run


def feature(cleaned):
    """Three jobs, each seeing the previous one's outcome; cleans up whatever happens."""
    got = []
    try:
        for name in ("a", "b", "c"):
            outcome = yield request(name)
            got.append(outcome.job_id)
        return got
    finally:
        cleaned.append(True)


def test_jobs_run_in_order_and_each_outcome_reaches_the_feature():
    log, cleaned = [], []
    assert run_blocking(feature(cleaned), runner=runner_log(log)) == ["id-a", "id-b", "id-c"]
    assert log == ["a", "b", "c"] and cleaned == [True]


def test_a_failing_job_reaches_the_feature_which_cleans_up():
    log, cleaned = [], []
    with pytest.raises(JobFailed, match="b failed"):
        run_blocking(feature(cleaned), runner=runner_log(log, fail_on="b"))
    assert log == ["a", "b"] and cleaned == [True]


def test_cancel_between_jobs_stops_before_the_next_and_cleans_up():
    log, cleaned = [], []
    with pytest.raises(JobFailed) as err:
        run_blocking(feature(cleaned), cancel=threading.Event(), runner=runner_log(log, cancel_after="a"))
    assert err.value.status == "cancelled"
    assert log == ["a"] and cleaned == [True]


def test_a_feature_may_handle_a_failed_job_and_go_on():
    def tolerant():
        results = []
        for name in ("a", "b"):
            try:
                results.append((yield request(name)).job_id)
            except JobFailed:
                results.append("skipped")
        return results

    assert run_blocking(tolerant(), runner=runner_log([], fail_on="a")) == ["skipped", "id-b"]


def test_a_feature_without_jobs_returns_at_once():
    def nothing():
        return 42
        yield  # pragma: no cover - makes this a generator

    assert run_blocking(nothing(), runner=runner_log([])) == 42
