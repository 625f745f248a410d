"""The streaming multipart reader (backend/api/multipart.py) keeps each part's bytes as views of the
body's chunks and joins them once: whatever the chunking, the parts are the bytes that were sent."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from _server import ROOT
from backend.api.errors import ApiError
from backend.api.multipart import Limits, read_multipart

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
