"""The streaming multipart reader (backend/api/multipart.py) keeps each part's bytes as views of the
body's chunks and joins them once: whatever the chunking, the parts are the bytes that were sent."""

from __future__ import annotations

import asyncio
import os
import sys

import numpy as np
import pytest

from _server import ROOT
from backend.api.errors import ApiError
from backend.api.multipart import Limits, read_multipart
from backend.jobs import pixels

sys.path.insert(0, str(ROOT))
from addon.core.client_wire import encode_multipart  # noqa: E402

LIMITS = Limits(spec_bytes=1024, part_bytes=1 << 20, parts=8, body_bytes=8 << 20)


class ChunkedRequest:
    """What read_multipart uses of a Starlette request: headers and the body's chunks as they arrive."""

    def __init__(self, body: bytes, ctype: str, chunk: int) -> None:
        self.headers = {"content-type": ctype}
        self._chunks = [body[i:i + chunk] for i in range(0, len(body), chunk)]

    async def stream(self):
        for chunk in self._chunks:
            yield chunk


def parts_of(body: bytes, ctype: str, chunk: int, limits: Limits = LIMITS):
    return asyncio.run(read_multipart(ChunkedRequest(body, ctype, chunk), limits))  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096, 1 << 20])
def test_parts_are_the_bytes_sent_whatever_the_chunking(chunk):
    images = {"depth": b"SCPX" + os.urandom(3000), "normal": b"\x89PNG\r\n\x1a\n" + os.urandom(50), "empty": b""}
    body, ctype = encode_multipart(b'{"a": 1}', images)
    parts = parts_of(body, ctype, chunk)
    assert [p.name for p in parts] == ["spec", "depth", "normal", "empty"]
    assert bytes(parts[0].data) == b'{"a": 1}'
    for part in parts[1:]:
        assert bytes(part.data) == images[part.name] and isinstance(part.data, bytearray)
        assert part.size == len(images[part.name]) and part.pieces == []


def test_a_part_over_its_limit_stops_the_read_while_it_arrives():
    body, ctype = encode_multipart(b"{}", {"depth": b"SCPX" + bytes(LIMITS.part_bytes)})
    with pytest.raises(ApiError) as caught:
        parts_of(body, ctype, 65536)
    assert caught.value.status == 413 and caught.value.code == "image_too_large"


def test_a_body_cut_short_keeps_what_came_of_its_last_part():
    """Nothing ends the last part: what arrived of it is still joined (and later refused as an image
    that does not fill its header, a 400 naming it), not silently dropped."""
    sent = b"SCPX" + os.urandom(100)
    body, ctype = encode_multipart(b"{}", {"depth": sent})
    parts = parts_of(body[: body.index(b"SCPX") + 50], ctype, 16)
    kept = bytes(parts[-1].data)
    assert parts[-1].name == "depth" and kept and sent.startswith(kept) and parts[-1].pieces == []


def raw(height: int, width: int, channels: int, seed: int = 0) -> bytes:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return bytes(pixels.encode(image))


@pytest.mark.parametrize("chunk", [1, 5, 16, 17, 333, 1 << 20])
def test_raw_pixel_parts_arrive_whole_whatever_the_chunking(chunk):
    images = {"depth": raw(20, 30, 1), "normal": raw(20, 30, 3, seed=1), "mask": raw(2, 3, 4, seed=2)}
    body, ctype = encode_multipart(b"{}", images)
    parts = {p.name: p for p in parts_of(body, ctype, chunk)}
    for key, sent in images.items():
        assert bytes(parts[key].data) == sent and len(parts[key].data) == len(sent)


@pytest.mark.parametrize("extra", [b"", b"\0", b"more than its header says" * 40])
def test_a_raw_part_longer_or_shorter_than_its_header_arrives_as_sent_and_is_refused_later(extra):
    full = raw(10, 10, 3)
    for sent in (full + extra, full[:-7]):
        body, ctype = encode_multipart(b"{}", {"depth": sent})
        for chunk in (7, 4096):
            part = parts_of(body, ctype, chunk)[-1]
            assert bytes(part.data) == sent
            if sent != full:
                with pytest.raises(pixels.PixelFormatError):
                    pixels.read_header(part.data)
