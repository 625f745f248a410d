"""Memory and body limits (issue 12, defects 3 and 4): queued inputs stay compressed, pixel caps answer
413/503 naming the limit before anything is decoded, and multipart limits hold while the body is read."""

from __future__ import annotations

import json
import socket
import threading
from functools import lru_cache

import numpy as np
import pytest

from _server import TOKEN, png, shared_server, tiny_spec
from backend.jobs.images import InputImage, probe_image
from backend.jobs.queue import InputsTooLarge, JobQueue, QueueFull
from backend.models import ModelManager
from backend.pipelines.interface import JobResult
from backend.spec import JobSpec


@lru_cache(maxsize=None)
def big_png() -> bytes:
    """4096² of one colour: ~50 KB of PNG, 50 MB once decoded."""
    return png(np.full((4096, 4096, 3), 90, np.uint8))


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture(scope="module")
def server():
    return shared_server()


@pytest.fixture
def spec():
    return JobSpec.model_validate({"model": "builtin:tiny", "prompt": "p", "width": 64, "height": 64, "steps": 2,
                                   "stages": [{"type": "generate", "controlnets": [{"image": "depth", "type": "depth"}]}]})


class GatedRunner:
    """The worker's runner for these tests: records the images each job got, holds the first job until
    ``release`` is set, returns a black image."""

    def __init__(self) -> None:
        self.release, self.first_started = threading.Event(), threading.Event()
        self.seen: list[dict[str, np.ndarray]] = []

    def __call__(self, spec, images, models, progress) -> JobResult:
        self.seen.append(dict(images))
        self.first_started.set()
        assert self.release.wait(60)
        return JobResult(images=[np.zeros((spec.height, spec.width, 3), np.uint8)], info={})


def test_queued_jobs_keep_the_bytes_received_and_decode_when_they_start(tmp_path, spec):
    runner = GatedRunner()
    queue = JobQueue(runner, ModelManager(device="cpu"), tmp_path)
    queue.start()
    try:
        first = queue.submit(spec, {"depth": probe_image(png(np.zeros((64, 64, 3), np.uint8)), "depth")}, {})
        assert runner.first_started.wait(30)
        waiting = queue.submit(spec, {"depth": probe_image(big_png(), "depth")}, {})
        assert waiting.status == "queued" and waiting.images == {}  # nothing decoded while it waits
        assert isinstance(waiting.inputs["depth"], InputImage) and len(waiting.inputs["depth"].data) < 1 << 20
        runner.release.set()
        assert first.finished.wait(30) and waiting.finished.wait(30) and waiting.status == "done"
        assert runner.seen[1]["depth"].shape == (4096, 4096, 3)  # decoded when it started
        assert waiting.inputs == {} and waiting.images == {}  # and freed when it ended
    finally:
        runner.release.set()
        queue.stop()


def test_the_queue_refuses_jobs_past_its_pixel_and_byte_limits_naming_them(tmp_path, spec):
    runner = GatedRunner()
    queue = JobQueue(runner, ModelManager(device="cpu"), tmp_path, max_job_pixels=5000,
                     max_queued_pixels=64 * 64 * 2, max_queued_bytes=10**9)
    queue.start()
    small = png(np.zeros((64, 64, 3), np.uint8))
    try:
        with pytest.raises(InputsTooLarge, match="5000"):
            queue.submit(spec, {"depth": probe_image(png(np.zeros((80, 80, 3), np.uint8)), "depth")}, {})
        queue.submit(spec, {"depth": probe_image(small, "depth")}, {})
        assert runner.first_started.wait(30)  # the running job counts no more
        queue.submit(spec, {"depth": probe_image(small, "depth")}, {})
        queue.submit(spec, {"depth": probe_image(small, "depth")}, {})
        with pytest.raises(QueueFull, match=str(64 * 64 * 2)):
            queue.submit(spec, {"depth": probe_image(small, "depth")}, {})
        queue.max_queued_pixels = 10**9
        queue.max_queued_bytes = 3 * len(small) - 1
        with pytest.raises(QueueFull, match=str(3 * len(small) - 1)):
            queue.submit(spec, {"depth": probe_image(small, "depth")}, {})
    finally:
        runner.release.set()
        queue.stop()


def test_a_job_over_the_pixel_cap_is_refused_with_413_before_decoding(server):
    units = [[{"image": f"c{i}", "type": "depth"} for i in range(j, j + 3)] for j in (0, 3)]
    spec = tiny_spec(stages=[{"type": "generate", "controlnets": units[0]},  # 6 x 4096² = 100 Mpx > 64 Mpx
                             {"type": "img2img", "strength": 0.5, "controlnets": units[1]}])
    status, body = server.submit(spec, {f"c{i}": big_png() for i in range(6)})
    assert status == 413 and body["error"]["code"] == "too_many_pixels"
    assert str(64 << 20) in body["error"]["message"]


def test_queued_jobs_do_not_hold_decoded_images(server):
    """Ten jobs with two 4096² inputs each wait behind a long one: decoded that is 1 GB, as PNG 1 MB."""
    status, body = server.json("GET", "/v1/health")
    assert status == 200 and body["queue"] == 0
    blocker = server.submit_ok(tiny_spec(steps=150, size=256))
    while server.json("GET", f"/v1/jobs/{blocker}")[1]["status"] != "running":
        pass
    units = [{"image": "a", "type": "depth"}, {"image": "b", "type": "edges"}]
    before = rss_bytes(server.proc.pid)
    ids = []
    try:
        for _ in range(10):
            status, answer = server.submit(tiny_spec(stages=[{"type": "generate", "controlnets": units}]),
                                           {"a": big_png(), "b": big_png()})
            assert status == 202, answer
            ids.append(answer["id"])
        grown = rss_bytes(server.proc.pid) - before
        assert grown < 300 << 20, f"the server grew by {grown >> 20} MB for 10 queued jobs"
    finally:
        for job in [*ids, blocker]:
            server.json("POST", f"/v1/jobs/{job}/cancel", {})


def test_a_spec_sent_as_a_text_field_obeys_the_spec_limit(server):
    spec = tiny_spec(name="x" * (1024 * 1024 + 10))
    status, body = server.submit(json.dumps(spec), {})
    assert status == 413 and body["error"]["code"] == "spec_too_large"


def test_a_file_part_over_the_limit_is_refused_while_it_is_read(server):
    """The answer comes when the part passes 64 MiB, with 200 MiB of the announced body never sent."""
    boundary = "b0undary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="spec"\r\n\r\n{json.dumps(tiny_spec())}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="depth"; filename="d.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode()
    total = len(head) + (264 << 20)
    request = (f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(request + head)
        chunk = b"\0" * (1 << 20)
        try:
            for _ in range(65):  # 65 MiB: over the limit, far from the announced length
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may hang up as soon as it has answered
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)  # before the fix: nothing comes back until the whole body was spooled
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_too_many_parts_are_refused(server):
    files = {f"k{i}": png(np.zeros((8, 8, 3), np.uint8)) for i in range(40)}
    status, body = server.submit(tiny_spec(), files)
    assert status == 413 and body["error"]["code"] == "too_many_parts"
