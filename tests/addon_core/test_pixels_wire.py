"""The client's side of raw pixels (docs/protocol.md, "Raw pixels"): which images go as one grey
channel, and that the pieces sent without copies are exactly the documented bytes."""

from __future__ import annotations

import numpy as np
import pytest

from addon.core.client import BackendClient, _grey
from addon.core.client_wire import encode_multipart
from addon.core.pixels import decode_pixels, encode_pixels, pixel_pieces


def grey(height: int, width: int, seed: int = 0) -> np.ndarray:
    plane = np.random.default_rng(seed).integers(0, 256, (height, width, 1), dtype=np.uint8)
    return np.repeat(plane, 3, axis=2)


@pytest.mark.parametrize("shape", [(64, 64), (7, 5), (1, 1), (3, 8), (1024, 1024)])
def test_grey_images_are_found_grey(shape):
    assert _grey(grey(*shape))


@pytest.mark.parametrize("channel", [1, 2])
@pytest.mark.parametrize("where", ["first", "last", "unsampled row", "row end"])
def test_one_sample_off_is_not_grey(channel, where):
    image = grey(64, 37, seed=channel)
    row, col = {"first": (0, 0), "last": (63, 36), "unsampled row": (5, 17), "row end": (9, 36)}[where]
    image[row, col, channel] ^= 1  # the smallest difference, where the row sample does not look
    assert not _grey(image)


def test_a_non_contiguous_grey_view_is_checked_as_its_values():
    big = grey(40, 40)
    assert _grey(big[::2, ::3])
    big[2, 3, 1] ^= 0x80
    assert not _grey(big[::2, ::3])


def test_contiguous_images_are_sent_from_their_own_memory_and_equal_the_encoded_bytes():
    client = BackendClient("http://127.0.0.1:9", raw_images=True)
    colour = np.random.default_rng(1).integers(0, 256, (33, 17, 3), dtype=np.uint8)
    pieces = client.image_pieces(colour)
    assert np.shares_memory(np.frombuffer(pieces[1], np.uint8), colour)  # no copy
    assert b"".join(pieces) == bytes(encode_pixels(colour))
    depth = grey(33, 17)
    sent = b"".join(client.image_pieces(depth))
    assert sent == bytes(encode_pixels(depth[:, :, :1]))  # grey: one channel, a third of the bytes
    np.testing.assert_array_equal(decode_pixels(sent)[:, :, 0], depth[:, :, 0])


def test_pieces_make_the_same_multipart_body_as_one_buffer():
    image = np.random.default_rng(2).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    body_pieces, ctype = encode_multipart(b"{}", {"normal": pixel_pieces(image)})
    boundary = ctype.split("boundary=")[1]
    body_one, ctype_one = encode_multipart(b"{}", {"normal": encode_pixels(image)})
    assert body_pieces == body_one.replace(ctype_one.split("boundary=")[1].encode(), boundary.encode())
    assert b"Content-Type: image/x-scenecast-pixels" in body_pieces


def test_depth_and_edges_are_one_plane_sent_as_one_channel_from_its_own_memory():
    from addon.core import conventions, edges

    depth = conventions.depth_to_control(np.array([[2.0, 5.0, np.inf], [8.0, 3.0, 4.0]]),
                                         conventions.DepthRange(2.0, 8.0))
    lines = edges.edges_to_control(np.array([[True, False, True], [False, False, True]]))
    client = BackendClient("http://127.0.0.1:9", raw_images=True)
    for image in (depth, lines):
        assert image.shape == (2, 3, 3) and image.strides[2] == 0 and not image.flags.writeable
        assert _grey(image)
        header, samples = client.image_pieces(image)
        assert np.shares_memory(np.frombuffer(samples, np.uint8), image)  # the plane itself, no copy
        assert bytes(header) + bytes(samples) == bytes(encode_pixels(np.ascontiguousarray(image[:, :, :1])))
    np.testing.assert_array_equal(lines[..., 1], [[255, 0, 255], [0, 0, 255]])
