"""Queueing on the one worker: cancel (running and queued), two clients at once, FIFO order."""

from __future__ import annotations

import threading

import pytest

from _server import gradient_png, shared_server, tiny_spec

LONG = 150  # the most steps a spec allows; at 64x64 on builtin:tiny that is seconds, so cancel lands mid-job


@pytest.fixture(scope="module")
def server():
    return shared_server()


def test_cancel_mid_job_stops_within_one_step(server):
    job_id = server.submit_ok(tiny_spec(steps=LONG))
    at_cancel = {}

    def on_event(event):
        if event["type"] == "step" and event["step"] == 2 and not at_cancel:
            status, body = server.json("POST", f"/v1/jobs/{job_id}/cancel")
            assert status == 200 and body["status"] in ("running", "cancelled")
            at_cancel["step"] = server.json("GET", f"/v1/jobs/{job_id}")[1]["step"]

    events = server.events(job_id, on_event=on_event)
    assert events[-1][0]["type"] == "cancelled"
    last_step = max(e["step"] for e, _ in events if e["type"] == "step")
    assert last_step <= at_cancel["step"] + 1 < LONG
    status, body = server.json("GET", f"/v1/jobs/{job_id}")
    assert body["status"] == "cancelled" and body["results"] == []
    assert server.request("GET", f"/v1/jobs/{job_id}/results/0")[0] == 409


def test_queued_job_cancels_at_once_and_the_queue_moves_on(server):
    first = server.submit_ok(tiny_spec(steps=LONG))
    second = server.submit_ok(tiny_spec(steps=2))
    status, body = server.json("POST", f"/v1/jobs/{second}/cancel")
    assert status == 200 and body["status"] == "cancelled"
    assert [e["type"] for e, _ in server.events(second)] == ["queued", "cancelled"]
    server.json("POST", f"/v1/jobs/{first}/cancel")
    assert server.wait(first)["status"] == "cancelled"
    assert server.wait(server.submit_ok(tiny_spec(steps=2)))["status"] == "done"


def test_two_clients_at_once_run_in_submission_order(server):
    ids: dict[str, str] = {}
    events: dict[str, list] = {}
    gate = threading.Barrier(2)

    def client(name: str, steps: int) -> None:
        gate.wait()
        ids[name] = server.submit_ok(tiny_spec(steps=steps, seed=len(name)))
        events[name] = server.events(ids[name])

    threads = [threading.Thread(target=client, args=(n, s)) for n, s in (("a", 8), ("bb", 8))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(events[n][-1][0]["type"] == "done" for n in ("a", "bb"))
    status = {n: server.json("GET", f"/v1/jobs/{ids[n]}")[1] for n in ids}
    first, second = sorted(status.values(), key=lambda s: s["created"])
    assert first["finished"] <= second["started"], "one worker: the second job starts after the first ends"
    second_name = next(n for n in ids if ids[n] == second["id"])
    queued = events[second_name][0][0]
    assert queued["type"] == "queued" and queued["position"] >= 1


def test_cancel_of_a_queued_twin_answers_and_the_twin_never_runs(server):
    """Two queued jobs with the same spec and images: the jobs are distinct (identity, not field equality,
    which would compare numpy arrays), so positions are right and cancelling the second one works."""
    first = server.submit_ok(tiny_spec(steps=LONG))
    twin_spec = tiny_spec(steps=2)
    a = server.submit_ok(twin_spec)
    status, body = server.submit(twin_spec, {"depth": gradient_png(64), "edges": gradient_png(64, 1)})
    assert status == 202 and body["position"] == 2, body
    b = body["id"]
    assert server.json("GET", f"/v1/jobs/{b}")[1]["position"] == 2
    status, body = server.json("POST", f"/v1/jobs/{b}/cancel")
    assert status == 200 and body["status"] == "cancelled", body
    assert server.json("GET", f"/v1/jobs/{a}")[1]["position"] == 1
    server.json("POST", f"/v1/jobs/{first}/cancel")
    assert server.wait(a)["status"] == "done"
    assert [e["type"] for e, _ in server.events(b)] == ["queued", "cancelled"]
    assert server.json("GET", f"/v1/jobs/{b}")[1]["status"] == "cancelled"
