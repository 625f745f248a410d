"""Queueing on the one worker: cancel (running and queued), two clients at once, FIFO order.

No test here waits on the clock or on a job being slow enough: a job that must be running (mid-job, or
busy while others queue) is held at a step gate (backend/testing/gates.py) until the test lets it go.
"""

from __future__ import annotations

import threading

import pytest

from _server import gradient_png, shared_server, tiny_spec

STEPS = 6


@pytest.fixture(scope="module")
def server():
    return shared_server()


def blocker(server, step: int = 1):
    """A job held at ``step`` (so the worker is busy until the test releases its gate); (job id, gate)."""
    gate = server.gate(step)
    job_id = server.submit_ok(tiny_spec(steps=STEPS, name=f"blocker {gate.mark}"))
    gate.wait_held()
    return job_id, gate


def test_cancel_mid_job_stops_within_one_step(server):
    gate = server.gate(2)  # held after step 2 of 6: the cancel surely lands mid-job
    job_id = server.submit_ok(tiny_spec(steps=STEPS, name=gate.mark))
    at_cancel = {}

    def on_event(event):
        if event["type"] == "step" and event["step"] == 2 and not at_cancel:
            gate.wait_held()
            status, body = server.json("POST", f"/v1/jobs/{job_id}/cancel")
            assert status == 200 and body["status"] == "running", body  # the cancelled event follows
            at_cancel["step"] = server.json("GET", f"/v1/jobs/{job_id}")[1]["step"]

    events = server.events(job_id, on_event=on_event)  # the cancel itself lets the gate go
    assert at_cancel == {"step": 2}
    assert events[-1][0]["type"] == "cancelled"
    last_step = max(e["step"] for e, _ in events if e["type"] == "step")
    assert last_step <= at_cancel["step"] + 1 < STEPS
    status, body = server.json("GET", f"/v1/jobs/{job_id}")
    assert body["status"] == "cancelled" and body["results"] == []
    assert server.request("GET", f"/v1/jobs/{job_id}/results/0")[0] == 409


def test_queued_job_cancels_at_once_and_the_queue_moves_on(server):
    first, gate = blocker(server)
    second = server.submit_ok(tiny_spec(steps=2))
    assert server.json("GET", f"/v1/jobs/{second}")[1]["status"] == "queued"
    status, body = server.json("POST", f"/v1/jobs/{second}/cancel")
    assert status == 200 and body["status"] == "cancelled"  # at once: the first job still holds the worker
    assert [e["type"] for e, _ in server.events(second)] == ["queued", "cancelled"]
    gate.release()
    assert server.wait(first)["status"] == "done"
    assert server.json("GET", f"/v1/jobs/{second}")[1]["started"] is None  # it never ran
    assert server.wait(server.submit_ok(tiny_spec(steps=2)))["status"] == "done"


def test_two_clients_at_once_run_in_submission_order(server):
    """Both submit at the same moment while the worker is busy; the queue's order is the run order."""
    busy, gate = blocker(server)
    ids: dict[str, str] = {}
    events: dict[str, list] = {}
    submitted = threading.Barrier(3)  # the two clients and the test
    start = threading.Barrier(2)

    def client(name: str) -> None:
        start.wait()
        ids[name] = server.submit_ok(tiny_spec(steps=4, seed=len(name)))
        submitted.wait()
        events[name] = server.events(ids[name])

    threads = [threading.Thread(target=client, args=(n,)) for n in ("a", "bb")]
    for t in threads:
        t.start()
    submitted.wait(120)
    queued = {n: server.json("GET", f"/v1/jobs/{ids[n]}")[1] for n in ids}
    assert sorted(q["position"] for q in queued.values()) == [1, 2], queued  # behind the held job, one each
    gate.release()
    for t in threads:
        t.join(120)
    assert server.wait(busy)["status"] == "done"
    assert all(events[n][-1][0]["type"] == "done" for n in ("a", "bb"))
    for n in ids:  # what each client was told at submit is where it stood
        assert events[n][0][0] == {**events[n][0][0], "type": "queued", "position": queued[n]["position"]}
    status = {n: server.json("GET", f"/v1/jobs/{ids[n]}")[1] for n in ids}
    first, second = sorted(ids, key=lambda n: queued[n]["position"])
    assert status[first]["finished"] <= status[second]["started"], "FIFO on one worker: position 1 runs first"


def test_cancel_of_a_queued_twin_answers_and_the_twin_never_runs(server):
    """Two queued jobs with the same spec and images: the jobs are distinct (identity, not field equality,
    which would compare numpy arrays), so positions are right and cancelling the second one works."""
    first, gate = blocker(server)
    twin_spec = tiny_spec(steps=2)
    a = server.submit_ok(twin_spec)
    status, body = server.submit(twin_spec, {"depth": gradient_png(64), "edges": gradient_png(64, 1)})
    assert status == 202 and body["position"] == 2, body
    b = body["id"]
    assert server.json("GET", f"/v1/jobs/{b}")[1]["position"] == 2
    status, body = server.json("POST", f"/v1/jobs/{b}/cancel")
    assert status == 200 and body["status"] == "cancelled", body
    assert server.json("GET", f"/v1/jobs/{a}")[1]["position"] == 1
    gate.release()
    assert server.wait(first)["status"] == "done"
    assert server.wait(a)["status"] == "done"
    assert [e["type"] for e, _ in server.events(b)] == ["queued", "cancelled"]
    assert server.json("GET", f"/v1/jobs/{b}")[1]["status"] == "cancelled"
