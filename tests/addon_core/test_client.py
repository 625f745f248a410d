"""BackendClient against the protocol-1 test double in fake_backend.py."""

import socket
import sys
import threading
import time
from pathlib import Path

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

PNG = encode_png(np.zeros((8, 8, 3), np.uint8))


def spec(name="ok", keys=("depth",)):
    return {
        "model": "builtin:tiny",
        "prompt": "a house",
        "name": name,
        "stages": [{"type": "generate", "controlnets": [{"image": k, "type": "depth"} for k in keys]}],
    }


@pytest.fixture
def backend():
    srv = FakeBackend()
    yield srv
    srv.stop()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_health_and_models(backend):
    client = BackendClient(backend.url)
    assert client.health()["protocol"] == PROTOCOL == 1
    assert client.models()[0]["id"] == "builtin:tiny"


def test_nothing_answering_says_how_to_start_the_backend():
    client = BackendClient(f"127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(BackendUnavailable) as err:
        client.health()
    assert "python -m backend serve" in err.value.fix and "start local backend" in err.value.fix.lower()
    assert isinstance(err.value, ScenecastError)


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


def test_submit_multipart_events_with_preview_images_and_results(backend):
    client = BackendClient(backend.url)
    depth = encode_png(np.full((8, 8, 3), 77, np.uint8))
    job_id = client.submit(spec(), {"depth": depth})
    job = backend.jobs[job_id]
    assert job.images == {"depth": depth}  # binary part arrived byte for byte
    assert job.spec["protocol"] == 1 and job.spec["prompt"] == "a house"
    events = list(client.events(job_id))
    types = [e.type for e in events]
    assert types[:3] == ["queued", "started", "stage"] and types[-1] == "done"
    previews = [e for e in events if e.type == "preview"]
    assert len(previews) == 3
    assert all(e.image is not None for e in previews)
    assert decode_png(previews[-1].image)[0, 0].tolist() == [120, 120, 120]  # step 3 * 40
    assert all(e.image is None for e in events if e.type != "preview")
    assert [e.data["seq"] for e in events] == list(range(len(events)))
    status = client.status(job_id)
    assert status["status"] == "done"
    result = client.result(job_id, 0)
    assert read_png_text(result) == {"seed": "7"}
    assert client.record(job_id)["inputs"] == ["depth"]


def test_wait_returns_final_status_and_reports_events(backend):
    client = BackendClient(backend.url)
    seen = []
    final = client.wait(client.submit(spec(), {"depth": PNG}), on_event=seen.append, timeout=10)
    assert final["status"] == "done" and len(final["results"]) == 1
    assert seen[-1].type == "done" and seen[-1].terminal
    raise_for_job(final)  # done: nothing raised


def test_wait_cancels_on_the_server_when_asked(backend):
    client = BackendClient(backend.url)
    job_id = client.submit(spec("slow"), {"depth": PNG})
    cancel = threading.Event()

    def on_event(event):
        if event.type == "step" and event.data["step"] == 3:
            cancel.set()

    start = time.monotonic()
    final = client.wait(job_id, on_event=on_event, cancel_event=cancel, timeout=10)
    assert final["status"] == "cancelled"
    assert time.monotonic() - start < 3  # 100 steps * 0.05 s would take 5 s
    assert any(path.endswith("/cancel") for method, path, _ in backend.requests if method == "POST")
    with pytest.raises(JobCancelled):
        raise_for_job(final)


def test_a_cancel_that_could_not_reach_the_backend_is_sent_again(backend):
    from addon.core.errors import BackendUnavailable

    client = BackendClient(backend.url)
    job_id = client.submit(spec("slow"), {"depth": PNG})
    real_cancel, calls = client.cancel, []

    def flaky_cancel(jid):
        calls.append(jid)
        if len(calls) == 1:
            raise BackendUnavailable("timed out", "try again")
        return real_cancel(jid)

    client.cancel = flaky_cancel
    cancel = threading.Event()
    cancel.set()
    assert client.wait(job_id, cancel_event=cancel, timeout=10)["status"] == "cancelled"
    assert len(calls) >= 2


def test_cancel_racing_the_end_of_the_job_returns_its_final_state(backend):
    client = BackendClient(backend.url)
    job_id = client.submit(spec(), {"depth": PNG})
    client.wait(job_id, timeout=10)
    cancel = threading.Event()
    cancel.set()  # the user pressed cancel as the job finished: the server answers 409
    assert client.wait(job_id, cancel_event=cancel, timeout=10)["status"] == "done"
    with pytest.raises(BackendError) as err:
        client.cancel(job_id)
    assert err.value.status == 409


def test_wait_timeout_leaves_the_job_running(backend):
    client = BackendClient(backend.url)
    job_id = client.submit(spec("slow"), {"depth": PNG})
    with pytest.raises(WaitTimeout):
        client.wait(job_id, timeout=0.3)
    assert client.status(job_id)["status"] == "running"
    client.cancel(job_id)


def test_failed_job_surfaces_the_backends_error(backend):
    client = BackendClient(backend.url)
    final = client.wait(client.submit(spec("fail"), {"depth": PNG}), timeout=10)
    assert final["status"] == "failed"
    with pytest.raises(JobFailed) as err:
        raise_for_job(final)
    assert "CUDA out of memory" in err.value.message and err.value.fix == "lower the size"
    assert err.value.code == "out_of_memory"


def test_broken_event_stream_falls_back_to_polling(backend):
    client = BackendClient(backend.url)
    final = client.wait(client.submit(spec("drop"), {"depth": PNG}), timeout=10)
    assert final["status"] == "done"


def test_backend_gone_mid_job_is_backend_unavailable():
    srv = FakeBackend()
    client = BackendClient(srv.url, timeout=2)
    job_id = client.submit(spec("drop"), {"depth": PNG})
    original = srv.jobs[job_id].emit

    def emit_then_die(data, png=None):
        original(data, png)
        if data["type"] == "step" and data["step"] == 2:
            threading.Thread(target=srv.stop).start()

    srv.jobs[job_id].emit = emit_then_die
    with pytest.raises(BackendUnavailable):
        client.wait(job_id, timeout=10)


def test_http_errors_carry_the_backends_message_and_fix(backend):
    client = BackendClient(backend.url)
    with pytest.raises(BackendError) as err:
        client.status("nope")
    assert err.value.status == 404 and err.value.code == "unknown_job"
    assert err.value.message == "no job 'nope'" and err.value.fix == "finished jobs are kept for a while only"
    with pytest.raises(BackendError) as err:
        client.submit({"name": "x", "stages": []}, {})
    assert err.value.status == 422 and "stages" in err.value.message
    with pytest.raises(BackendError) as err:  # refused handshake: same error body
        list(client.events("nope"))
    assert err.value.code == "unknown_job"


def test_missing_image_is_caught_before_sending(backend):
    with pytest.raises(ScenecastError, match="depth"):
        BackendClient(backend.url).submit(spec(keys=("depth",)), {"normal": PNG})
    assert not backend.jobs


def test_uploaded_images_are_named_by_id(backend):
    client = BackendClient(backend.url)
    image_id = client.upload_image(PNG)
    assert image_id.startswith("sha256:") and len(image_id) == 7 + 64
    job_id = client.submit(spec(keys=(image_id,)))  # no parts: the spec goes as JSON
    assert client.wait(job_id, timeout=10)["status"] == "done"
    posted = [h for m, p, h in backend.requests if m == "POST" and p == "/v1/jobs"]
    assert posted[-1]["Content-Type"] == "application/json"


def test_token_is_sent_on_http_and_websocket():
    srv = FakeBackend(token="s3cret")
    try:
        with pytest.raises(AuthError) as err:
            BackendClient(srv.url).models()
        assert err.value.status == 401 and err.value.fix
        client = BackendClient(srv.url, token="s3cret")
        job_id = client.submit(spec(), {"depth": PNG})
        assert client.wait(job_id, timeout=10)["status"] == "done"
        with pytest.raises(AuthError):
            list(BackendClient(srv.url, token="wrong").events(job_id))
    finally:
        srv.stop()


def test_bad_url_is_refused():
    with pytest.raises(ScenecastError, match="https://"):
        BackendClient("ftp://example.com")


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
    import socket as socketlib

    from addon.core.errors import BackendUnavailable

    server = socketlib.socket()
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
