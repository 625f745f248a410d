"""Fast on the wire: raw pixels in and out (docs/protocol.md, "Raw pixels"), results handed over
(`ready`) before their PNGs are written, PNG with its metadata still what is saved."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from PIL import Image

from _server import ROOT, TOKEN, png, shared_server, tiny_spec
from backend.jobs import pixels

sys.path.insert(0, str(ROOT))
from addon.core.client import BackendClient  # noqa: E402
from addon.core.pixels import encode_pixels  # noqa: E402


@pytest.fixture(scope="module")
def server():
    return shared_server()


def controls(size: int = 64) -> dict[str, np.ndarray]:
    ramp = np.tile(np.linspace(0, 255, size, dtype=np.uint8)[None, :, None], (size, 1, 3))
    return {"depth": ramp, "edges": np.ascontiguousarray(ramp.transpose(1, 0, 2))}


def test_raw_pixel_inputs_give_the_same_result_as_png_inputs(server):
    client = BackendClient(server.url, token=TOKEN)
    assert client.sends_pixels()  # loopback, and the backend offers them
    images = controls()
    as_png = client.submit(tiny_spec(steps=2), {k: png(v) for k, v in images.items()})
    as_raw = client.submit(tiny_spec(steps=2), {k: encode_pixels(v) for k, v in images.items()})
    a, b = client.wait_pixels(as_png, timeout=120)[0], client.wait_pixels(as_raw, timeout=120)[0]
    np.testing.assert_array_equal(a, b)
    grey = client.submit(tiny_spec(steps=2), {k: encode_pixels(v[:, :, :1]) for k, v in images.items()})
    np.testing.assert_array_equal(client.wait_pixels(grey, timeout=120)[0], a)  # one channel = grey, like PNG


def test_results_are_ready_before_done_and_the_saved_png_keeps_its_metadata(server):
    client = BackendClient(server.url, token=TOKEN)
    job = client.submit(tiny_spec(steps=2), controls())
    events = [e for e in client.events(job)]
    types = [e.type for e in events]
    assert types.index("ready") < types.index("done")
    ready = events[types.index("ready")].data["results"]
    assert ready == [{"index": 0, "url": f"/v1/jobs/{job}/results/0", "width": 64, "height": 64}]
    raw = client.result_pixels(job, 0)
    saved = client.result(job, 0)
    with Image.open(io.BytesIO(saved)) as im:
        assert "scenecast" in im.text and "parameters" in im.text
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), raw)


def test_a_malformed_raw_part_is_a_400_naming_the_image(server):
    bad = pixels.encode(np.zeros((64, 64, 3), np.uint8))[:-1]
    status, body = server.submit(tiny_spec(), {"depth": bad, "edges": png(np.zeros((64, 64, 3), np.uint8))})
    assert status == 400 and body["error"]["code"] == "bad_image" and "'depth'" in body["error"]["message"]


def test_the_pixel_format_round_trips_and_checks_its_length():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    data = encode_pixels(image)
    assert data == pixels.encode(image) and pixels.read_header(data) == (7, 5, 4)
    np.testing.assert_array_equal(pixels.decode(data), image)
    with pytest.raises(pixels.PixelFormatError):
        pixels.read_header(data + b"\0")


def test_the_queue_keeps_result_pixels_within_its_budget(tmp_path):
    from backend.jobs.queue import JobQueue
    from backend.models import ModelManager
    from backend.pipelines.interface import JobResult
    from backend.spec import JobSpec

    def runner(spec, images, models, progress):
        return JobResult(images=[np.full((spec.height, spec.width, 3), spec.seed, np.uint8)], info={})

    queue = JobQueue(runner, ModelManager(device="cpu"), tmp_path, keep_output_pixels=64 * 64 + 1)
    queue.start()
    try:
        spec = JobSpec.model_validate({"model": "builtin:tiny", "prompt": "p", "width": 64, "height": 64,
                                       "seed": 3, "stages": [{"type": "generate"}]})
        first = queue.submit(spec, {}, {})
        assert first.finished.wait(30) and first.outputs is not None and first.outputs[0][0, 0, 0] == 3
        second = queue.submit(spec, {}, {})
        assert second.finished.wait(30) and second.outputs is not None
        assert first.outputs is None  # over the budget: the oldest pixels go, its PNG stays on disk
        assert (tmp_path / first.id / "result-0.png").is_file()
    finally:
        queue.stop()


class _Accepting:
    headers = {"accept": pixels.MEDIA_TYPE}


def _sent(response) -> bytes:
    """The body a Starlette response sends, header piece and samples piece joined."""
    import asyncio

    messages: list[dict] = []

    async def send(message):
        messages.append(message)

    asyncio.run(response({"type": "http"}, None, send))
    start, *bodies = messages
    length = dict(start["headers"])[b"content-length"]
    body = b"".join(bytes(m["body"]) for m in bodies)
    assert int(length) == len(body) and not bodies[-1]["more_body"]
    return body


def test_a_pixel_answer_is_the_documented_bytes_whatever_the_array_layout():
    from backend.api.routes_jobs import PixelResponse

    image = np.random.default_rng(3).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    assert _sent(PixelResponse(image)) == bytes(pixels.encode(image))
    strided = np.asfortranarray(image)  # not C-contiguous: gathered, same bytes
    assert _sent(PixelResponse(strided)) == bytes(pixels.encode(image))


def test_pixels_dropped_from_memory_are_read_back_from_the_saved_png(tmp_path):
    from backend.api.routes_jobs import _saved_result
    from backend.jobs.queue import JobQueue
    from backend.models import ModelManager
    from backend.pipelines.interface import JobResult
    from backend.spec import JobSpec

    def runner(spec, images, models, progress):
        rng = np.random.default_rng(spec.seed)
        return JobResult(images=[rng.integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8)], info={})

    queue = JobQueue(runner, ModelManager(device="cpu"), tmp_path, keep_output_pixels=1)
    queue.start()
    try:
        spec = JobSpec.model_validate({"model": "builtin:tiny", "prompt": "p", "width": 128, "height": 64,
                                       "seed": 5, "stages": [{"type": "generate"}]})
        first, second = queue.submit(spec, {}, {}), queue.submit(spec, {}, {})
        assert first.finished.wait(30) and second.finished.wait(30) and first.outputs is None
        data = _sent(_saved_result(first, 0, _Accepting()))
        expected = np.random.default_rng(5).integers(0, 256, (64, 128, 3), dtype=np.uint8)
        np.testing.assert_array_equal(pixels.decode(data), expected)
    finally:
        queue.stop()
