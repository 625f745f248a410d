"""BackendClient against the real backend on builtin:tiny, and against fake_backend.py for the faults
the real one cannot be made to show on cue (a failed job, a broken stream, a backend dying mid-job, a
job that waits for the test between steps). One test runs the same calls against both and compares
the shapes of the answers, so the fake cannot drift from the protocol the server really speaks.

No test here reads a clock: jobs that must still be running when something happens are "gated" fake
jobs, which run a step only when the test releases it.
"""

import hashlib
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from addon.core.client import (
    PROTOCOL,
    AuthError,
    BackendClient,
    BackendError,
    BackendUnavailable,
    JobCancelled,
    JobFailed,
    ProtocolMismatch,
    ScenecastError,
    WaitTimeout,
    encode_multipart,
    raise_for_job,
)
from addon.core.png import decode_png, encode_png, read_png_text

sys.path.insert(0, str(Path(__file__).parent))
from fake_backend import FakeBackend  # noqa: E402
from real_backend import real_backend  # noqa: E402

PNG = encode_png(np.zeros((64, 64, 3), np.uint8))


def spec(name: str = "ok", keys: tuple[str, ...] = ("depth",), **over: Any) -> dict[str, Any]:
    """A job both servers run: the real one on builtin:tiny at 64x64, the fake by its ``name`` script."""
    out = {
        "model": "builtin:tiny",
        "prompt": "a house",
        "name": name,
        "width": 64,
        "height": 64,
        "steps": 3,
        "seed": 7,
        "stages": [{"type": "generate", "controlnets": [{"image": k, "type": "depth"} for k in keys]}],
    }
    out.update(over)
    return out


@pytest.fixture
def backend():
    srv = FakeBackend()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def real() -> BackendClient:
    return BackendClient(real_backend().url, timeout=60)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------------------ the real backend


def test_health_and_models(real):
    assert real.health()["protocol"] == PROTOCOL == 1
    models = {m["id"]: m for m in real.models()}
    assert models["builtin:tiny"]["installed"] and models["builtin:tiny"]["kind"] == "base"


def test_submit_multipart_events_with_preview_images_and_results(real):
    depth = encode_png(np.full((64, 64, 3), 77, np.uint8))
    job_id = real.submit(spec(preview_every=1), {"depth": depth})
    events = list(real.events(job_id))
    # queued 1, started 2, stage 3, step 4, preview 5, step 6, preview 7, step 8, ready 9, done 10. A stream
    # opened after step 2 replays only the latest preview: seq 5 may be missing (protocol), nothing else.
    assert [e.type for e in events if e.type != "preview"] == ["queued", "started", "stage", "step", "step",
                                                                 "step", "ready", "done"]
    seqs = [e.data["seq"] for e in events]
    assert seqs[0] == 1 and seqs == sorted(seqs) and set(range(1, 11)) - set(seqs) <= {5}
    assert [e.data["step"] for e in events if e.type == "preview"][-1] == 2
    previews = [e for e in events if e.type == "preview"]
    for event in previews:  # each preview's PNG is the binary frame after it, of the size it says
        image = decode_png(event.image)
        assert image.shape[:2] == (event.data["height"], event.data["width"])
    assert all(e.image is None for e in events if e.type != "preview")
    status = real.status(job_id)
    assert status["status"] == "done" and status["results"] == events[-1].data["results"]
    result = real.result(job_id, 0)
    assert hashlib.sha256(result).hexdigest() == status["results"][0]["sha256"]
    assert decode_png(result).shape[:2] == (64, 64)
    assert "Seed: 7" in read_png_text(result)["parameters"]
    # The record names each image the job received by the sha256 of the bytes sent: byte for byte.
    assert real.record(job_id)["inputs"] == {"depth": hashlib.sha256(depth).hexdigest()}


def test_wait_returns_final_status_and_reports_events(real):
    seen = []
    final = real.wait(real.submit(spec(), {"depth": PNG}), on_event=seen.append, timeout=120)
    assert final["status"] == "done" and len(final["results"]) == 1
    assert seen[-1].type == "done" and seen[-1].terminal and seen[-1].data["results"] == final["results"]
    raise_for_job(final)  # done: nothing raised


def test_cancelling_a_finished_job_answers_its_status_and_wait_returns_done(real):
    job_id = real.submit(spec(), {"depth": PNG})
    real.wait(job_id, timeout=120)
    assert real.cancel(job_id) == {"id": job_id, "status": "done"}  # protocol: 200, nothing changes
    cancel = threading.Event()
    cancel.set()  # the user pressed cancel as the job finished
    assert real.wait(job_id, cancel_event=cancel, timeout=120)["status"] == "done"
    assert real.status(job_id)["status"] == "done"


def test_http_errors_carry_the_backends_message_and_fix(real):
    with pytest.raises(BackendError) as err:
        real.status("nope")
    assert err.value.status == 404 and err.value.code == "unknown_job"
    assert "nope" in err.value.message and err.value.fix
    with pytest.raises(BackendError) as err:
        real.submit({"model": "builtin:tiny", "prompt": "x", "stages": []}, {})
    assert err.value.status == 422 and err.value.code == "invalid_spec" and "stages" in err.value.message
    with pytest.raises(BackendError) as err:  # refused handshake: same error body
        list(real.events("nope"))
    assert err.value.status == 404 and err.value.code == "unknown_job"


def test_missing_image_is_caught_before_sending(backend):
    with pytest.raises(ScenecastError, match="depth"):
        BackendClient(backend.url).submit(spec(keys=("depth",)), {"normal": PNG})
    assert not backend.jobs and not [r for r in backend.requests if r[1] == "/v1/jobs"]


def test_uploaded_images_are_named_by_id(real):
    image_id = real.upload_image(PNG)
    assert image_id == "sha256:" + hashlib.sha256(PNG).hexdigest()
    job_id = real.submit(spec(keys=(image_id,)))  # no parts: the spec goes as JSON
    assert real.wait(job_id, timeout=120)["status"] == "done"
    assert real.record(job_id)["inputs"] == {image_id: hashlib.sha256(PNG).hexdigest()}


def test_uploaded_ids_go_as_json_not_multipart(backend):
    client = BackendClient(backend.url)
    job_id = client.submit(spec(keys=(client.upload_image(PNG),)))
    assert client.wait(job_id, timeout=10)["status"] == "done"
    posted = [h for m, p, h in backend.requests if m == "POST" and p == "/v1/jobs"]
    assert posted[-1]["Content-Type"] == "application/json"


# --------------------------------------------------------------------- the fake agrees with it


def shape(value: Any) -> Any:
    """The structure of a JSON answer: dicts by key, lists by their first item, scalars by kind."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else type(value).__name__


def differences(fake: Any, real: Any, where: str = "", subset: bool = False) -> list[str]:
    """Where the fake's shape is not the real one's: keys on either side only, kinds that differ.
    ``null`` matches any kind (a field not set yet). Under ``spec``, ``resolved`` and ``backend`` the
    fake may say less (the real server fills the spec's defaults and reports more about its device), and
    under ``memory_plans``, keyed by the models the real server happens to have loaded."""
    if fake == "null" or real == "null":
        return []
    if isinstance(fake, dict) and isinstance(real, dict):
        subset = subset or where.split(".")[-1] in ("spec", "resolved", "backend", "memory_plans")
        out = [] if subset else [f"{where}.{k}: only the real server has it" for k in sorted(set(real) - set(fake))]
        out += [f"{where}.{k}: only the fake has it" for k in sorted(set(fake) - set(real))]
        for k in sorted(set(fake) & set(real)):
            out += differences(fake[k], real[k], f"{where}.{k}", subset)
        return out
    if isinstance(fake, list) and isinstance(real, list):
        return differences(fake[0], real[0], where + "[]", subset) if fake and real else []
    return [] if fake == real else [f"{where}: fake {fake}, real {real}"]


def client_session(client: BackendClient) -> dict[str, Any]:
    """The same calls, in the same order, against either server; the answers and errors they gave."""
    out: dict[str, Any] = {"health": client.health(), "models": client.models()}
    job_id = client.submit(spec(preview_every=1), {"depth": PNG})
    out["submit"] = job_id
    events = list(client.events(job_id))
    out["event_types"] = [e.type for e in events if e.type != "preview"]  # a late stream skips old previews
    out["event_seqs"] = [e.data["seq"] for e in events if e.type != "preview"]
    out["events"] = {e.type: e.data for e in events}
    previews = [e for e in events if e.type == "preview"]
    out["previews_have_png"] = bool(previews) and all(e.image and e.image.startswith(b"\x89PNG") for e in previews)
    out["status"] = client.status(job_id)
    out["result_is_png"] = client.result(job_id, 0).startswith(b"\x89PNG")
    out["record"] = client.record(job_id)
    out["record_inputs"] = out["record"]["inputs"] == {"depth": hashlib.sha256(PNG).hexdigest()}
    out["cancel_finished"] = client.cancel(job_id)
    out["upload"] = client.upload_image(PNG)
    errors = {}
    for name, call in {
        "unknown_job": lambda: client.status("nope"),
        "no_such_result": lambda: client.result(job_id, 5),
        "invalid_spec": lambda: client.submit({"model": "builtin:tiny", "prompt": "x", "stages": []}),
        "missing_image": lambda: client.submit(spec(keys=("sha256:" + "0" * 64,))),
        "events_of_unknown_job": lambda: list(client.events("nope")),
    }.items():
        with pytest.raises(BackendError) as err:
            call()
        errors[name] = (err.value.status, err.value.code, bool(err.value.message), bool(err.value.fix))
    out["errors"] = errors
    return out


def test_the_fake_answers_the_same_calls_in_the_shapes_the_real_server_does(backend, real):
    fake = client_session(BackendClient(backend.url))
    truth = client_session(real)
    for key in ("event_types", "event_seqs", "previews_have_png", "result_is_png", "record_inputs", "errors"):
        assert fake[key] == truth[key], key
    assert truth["record_inputs"] and truth["event_seqs"][0] == 1
    assert fake["cancel_finished"] == {"id": fake["submit"], "status": "done"}
    assert truth["cancel_finished"] == {"id": truth["submit"], "status": "done"}
    assert isinstance(fake["submit"], str) and isinstance(truth["submit"], str)
    assert fake["upload"] == truth["upload"]  # the id is the hash of the bytes on both
    for key in ("health", "status", "record", "events", "models"):
        assert differences(shape(fake[key]), shape(truth[key]), key) == []


# ---------------------------------------------------------------- faults, on the fake backend


def test_nothing_answering_says_how_to_start_the_backend():
    client = BackendClient(f"127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(BackendUnavailable) as err:
        client.health()
    assert "python -m backend serve" in err.value.fix and "start local backend" in err.value.fix.lower()


@pytest.mark.parametrize("theirs, side", [(2, "add-on"), (0, "backend")])
def test_protocol_mismatch_names_the_side_to_update(theirs, side):
    srv = FakeBackend(protocol=theirs)
    try:
        with pytest.raises(ProtocolMismatch) as err:
            BackendClient(srv.url).health()
        assert f"protocol {theirs}" in err.value.message and "protocol 1" in err.value.message
        assert f"update the {side}" in err.value.fix.lower() or f"update the scenecast {side}" in err.value.fix.lower()
    finally:
        srv.stop()


def test_multipart_parts_arrive_byte_for_byte(backend):
    client = BackendClient(backend.url)
    depth = encode_png(np.full((8, 8, 3), 77, np.uint8))
    job_id = client.submit(spec(), {"depth": depth})
    job = backend.jobs[job_id]
    assert job.images == {"depth": depth}
    assert job.spec["protocol"] == 1 and job.spec["prompt"] == "a house"


def test_wait_cancels_on_the_server_when_asked(backend):
    client = BackendClient(backend.url)
    job_id = client.submit(spec("gated"), {"depth": PNG})
    backend.jobs[job_id].release(3)  # steps 1..3 may run; step 4 waits for the test, which never lets it
    cancel = threading.Event()
    steps = []

    def on_event(event):
        if event.type == "step":
            steps.append(event.data["step"])
            if event.data["step"] == 3:
                cancel.set()

    final = client.wait(job_id, on_event=on_event, cancel_event=cancel, timeout=60)
    assert final["status"] == "cancelled" and steps == [1, 2, 3]  # only the cancel could have ended it
    assert [p for m, p, _ in backend.requests if m == "POST" and p.endswith("/cancel")] == [f"/v1/jobs/{job_id}/cancel"]
    with pytest.raises(JobCancelled) as err:
        raise_for_job(final)
    assert err.value.job_id == job_id and err.value.fix


def test_a_cancel_that_could_not_reach_the_backend_is_sent_again(backend):
    client = BackendClient(backend.url)
    job_id = client.submit(spec("gated"), {"depth": PNG})  # never released: only a cancel ends it
    real_cancel, calls = client.cancel, []

    def flaky_cancel(jid):
        calls.append(jid)
        if len(calls) == 1:
            raise BackendUnavailable("timed out", "try again")
        return real_cancel(jid)

    client.cancel = flaky_cancel
    cancel = threading.Event()
    cancel.set()
    assert client.wait(job_id, cancel_event=cancel, timeout=60)["status"] == "cancelled"
    assert calls == [job_id, job_id]  # the first did not arrive, the second did, and no third was sent


def test_wait_timeout_leaves_the_job_running(backend):
    client = BackendClient(backend.url)
    job_id = client.submit(spec("gated"), {"depth": PNG})  # cannot finish: it waits for the test
    with pytest.raises(WaitTimeout) as err:
        client.wait(job_id, timeout=0.3)
    assert "still running" in err.value.fix
    assert client.status(job_id)["status"] == "running"
    assert client.cancel(job_id)["status"] == "running"  # as the real server: the cancelled event follows
    assert client.wait(job_id, timeout=60)["status"] == "cancelled"


def test_failed_job_surfaces_the_backends_error(backend):
    client = BackendClient(backend.url)
    final = client.wait(client.submit(spec("fail"), {"depth": PNG}), timeout=10)
    assert final["status"] == "failed"
    with pytest.raises(JobFailed) as err:
        raise_for_job(final)
    assert "CUDA out of memory" in err.value.message and err.value.fix == "lower the size"
    assert err.value.code == "out_of_memory" and err.value.status == "failed"


def test_broken_event_stream_falls_back_to_polling(backend):
    client = BackendClient(backend.url)
    seen = []
    final = client.wait(client.submit(spec("drop"), {"depth": PNG}), on_event=seen.append, timeout=10)
    assert final["status"] == "done" and len(final["results"]) == 1
    assert "done" not in [e.type for e in seen]  # the stream broke at step 2: the end came by polling
    assert any(m == "GET" and p.startswith("/v1/jobs/job") and p.count("/") == 3 for m, p, _ in backend.requests)


def test_backend_gone_mid_job_is_backend_unavailable():
    srv = FakeBackend()
    client = BackendClient(srv.url, timeout=2)
    job_id = client.submit(spec("gated"), {"depth": PNG})
    job = srv.jobs[job_id]
    original = job.emit

    def emit_then_die(data, png=None):
        original(data, png)
        if data["type"] == "step" and data["step"] == 2:
            threading.Thread(target=srv.stop).start()  # listener closed first, then the stream is cut

    job.emit = emit_then_die
    job.release(2)  # the job then waits for step 3 forever: only the dying backend ends the wait
    with pytest.raises(BackendUnavailable) as err:
        client.wait(job_id, timeout=60)
    assert err.value.fix


def test_token_is_sent_on_http_and_websocket():
    srv = FakeBackend(token="s3cret")
    try:
        with pytest.raises(AuthError) as err:
            BackendClient(srv.url).models()
        assert err.value.status == 401 and err.value.fix
        client = BackendClient(srv.url, token="s3cret")
        job_id = client.submit(spec(), {"depth": PNG})
        assert client.wait(job_id, timeout=10)["status"] == "done"
        assert all(h.get("Authorization") == "Bearer s3cret" for _, p, h in srv.requests
                   if p != "/v1/models" and not p.startswith("/v1/health"))
        with pytest.raises(AuthError):
            list(BackendClient(srv.url, token="wrong").events(job_id))
    finally:
        srv.stop()


def test_bad_url_is_refused():
    with pytest.raises(ScenecastError, match="https://") as err:
        BackendClient("ftp://example.com")
    assert "7437" in err.value.fix


def test_multipart_body_is_binary_safe():
    blob = bytes(range(256)) * 4 + b"\r\n--not-a-boundary\r\n"
    body, ctype = encode_multipart(b'{"a": 1}', {"depth": blob})
    boundary = ctype.split("boundary=")[1]
    assert body.count(f"--{boundary}".encode()) == 3
    assert blob in body
    with pytest.raises(ScenecastError):
        encode_multipart(b"{}", {'bad"key': b""})


def test_an_event_stream_dropped_during_the_handshake_reads_as_an_unreachable_backend():
    """So wait() falls back to polling instead of failing a job that is still running."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def accept_and_drop():
        conn, _ = server.accept()
        conn.recv(4096)
        conn.close()

    thread = threading.Thread(target=accept_and_drop, daemon=True)
    thread.start()
    client = BackendClient(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=5)
    with pytest.raises(BackendUnavailable) as info:
        client._connect_events("job1")
    assert info.value.fix
    server.close()
