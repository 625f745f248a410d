import base64
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from addon.core.png import decode_png, encode_png, read_png_text

ROOT = Path(__file__).resolve().parents[2]
BACKEND_PYTHON = ROOT / ".venv" / "bin" / "python"

# Written by Pillow 13 (adaptive filters: rows use Sub, Up and Paeth), 12x9, with a tEXt "scenecast",
# a compressed iTXt "prompt" ("café ☃") and a zTXt "ztxt". Pixels are _pattern(9, 12, channels).
PIL_RGB = "iVBORw0KGgoAAAANSUhEUgAAAAwAAAAJCAIAAACJ2loDAAAAEHRFWHRzY2VuZWNhc3QAc2VlZD032/zUVgAAABxpVFh0cHJvbXB0AAEAAAB4nEtOTDu8UuHRjGYAFg4EtOl+aXgAAAAYelRYdHp0eHQAAHicq8osKEhNUajCQwEA9koNXcKZBFkAAACbSURBVHicY2SI3qZKCLBwc3NLSEioqqoaQYCPkZGREff168iCTIqKinp6etbW1h4eHr9+/WJnZxcREUETZEzeJ+nj4+Pj4/Px40c0Es5g3MCdFhkZ+e/fP2QSjcsonHcyLS2Nm5ubm5sbzkBmp6WlMfY8dyouLpbAAMiCjNJlFwkHwdKlS42MjIyM9n/8aPTv5j9uI24JCQk0QQBCj2id1l5xAgAAAABJRU5ErkJggg=="
PIL_RGBA = "iVBORw0KGgoAAAANSUhEUgAAAAwAAAAJCAYAAAAGuM1UAAAAEHRFWHRzY2VuZWNhc3QAc2VlZD032/zUVgAAABxpVFh0cHJvbXB0AAEAAAB4nEtOTDu8UuHRjGYAFg4EtOl+aXgAAAAYelRYdHp0eHQAAHicq8osKEhNUajCQwEA9koNXcKZBFkAAACySURBVHicY2SI3iaoSgJg4ebm5paQkJBQVVVVNYIBHwjFff06hhyToqKiop6enp61tbW1h4eHx69fv36xs7Ozi4iIiGCTY0zeJ1niAwUfP378iI1GZjNu4E47GBkZGfnv379/6DQ2MUbhvJMqaWlpadxQgMxG56elpaUx9jx3mltcXFwsgQOgyzFKl13UISlYly5duhQSYPuNPn40+vjv5r9/3Ebc3BISEp+XLl16HV0OAFrci7ny3pWUAAAAAElFTkSuQmCC"
PIL_L = "iVBORw0KGgoAAAANSUhEUgAAAAwAAAAJCAAAAAAj05KIAAAAEHRFWHRzY2VuZWNhc3QAc2VlZD032/zUVgAAABxpVFh0cHJvbXB0AAEAAAB4nEtOTDu8UuHRjGYAFg4EtOl+aXgAAAAYelRYdHp0eHQAAHicq8osKEhNUajCQwEA9koNXcKZBFkAAABtSURBVHicY2RQRQAWbglVIyMjI24JVSMjJkU9a49f7CKKetYevxiS1/9+Y6FZmrbp33trxg2R/yL/Rf77F/kv8h+jcBo3dxo3N3caN3caY0+xhISEhIREsYSEBKM0stFLjYw+/uOWWGpk9PEfAF13Io0Xb+8fAAAAAElFTkSuQmCC"
# Pillow palette image (Pillow stores 5 colours at 4 bits per pixel): index = (row*12 + col) % 5, palette below, tRNS (255, 128).
PIL_P = "iVBORw0KGgoAAAANSUhEUgAAAAwAAAAJBAMAAAD0ltBnAAAAD1BMVEUKFB4oMjxGUFrIAAAAyACEmUDGAAAAAnRSTlP/gAgPs2oAAAAuSURBVHicY2BUdhAyYWRQdhAyYVRmkr2kdFZJlkHIhFHZQYjBhFHZQciEAY8SACMECYXKjCwOAAAAAElFTkSuQmCC"


def _pattern(h, w, c):
    y, x, k = np.mgrid[0:h, 0:w, 0:c]
    return ((x * 37 + y * y * 11 + k * 91 + (x * y) % 7 * 13) % 256).astype(np.uint8)


@pytest.mark.parametrize("b64, channels", [(PIL_RGB, 3), (PIL_RGBA, 4), (PIL_L, 1)])
def test_decodes_pillow_pngs_with_paeth_rows(b64, channels):
    img = decode_png(base64.b64decode(b64))
    expected = _pattern(9, 12, channels)
    assert img.dtype == np.uint8
    assert np.array_equal(img, expected[..., 0] if channels == 1 else expected)


def test_reads_text_itxt_and_ztxt_written_by_pillow():
    text = read_png_text(base64.b64decode(PIL_RGB))
    assert text == {"scenecast": "seed=7", "prompt": "café ☃", "ztxt": "zipped " * 5}


def test_decodes_pillow_palette_with_transparency():
    img = decode_png(base64.b64decode(PIL_P))
    palette = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90], [200, 0, 0], [0, 200, 0]])
    alpha = np.array([255, 128, 255, 255, 255])
    index = np.arange(9 * 12).reshape(9, 12) % 5
    assert img.shape == (9, 12, 4)
    assert np.array_equal(img[..., :3], palette[index]) and np.array_equal(img[..., 3], alpha[index])


@pytest.mark.parametrize("filters", ["adaptive", "none", "sub", "up", "average", "paeth"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_round_trip_every_filter_and_layout(filters, channels):
    rng = np.random.default_rng(channels)
    shape = (17, 23) if channels == 1 else (17, 23, channels)
    noisy = rng.integers(0, 256, size=shape, dtype=np.uint8)
    smooth = (np.indices(shape).sum(axis=0) * 7 % 256).astype(np.uint8)
    for arr in (noisy, smooth):
        assert np.array_equal(decode_png(encode_png(arr, filters=filters)), arr)


def test_mixed_filter_rows_decode():
    """Rows alternating between all five filters (the wavefront handles the mixed block)."""
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 256, size=(10, 7, 3), dtype=np.uint8)
    rows = [encode_png(arr, filters=ft) for ft in range(5)]
    raws = [zlib.decompress(_idat(b)) for b in rows]
    stride = 7 * 3 + 1
    mixed = b"".join(raws[r % 5][r * stride : (r + 1) * stride] for r in range(10))
    png = _replace_idat(rows[0], zlib.compress(mixed))
    assert np.array_equal(decode_png(png), arr)


def test_text_round_trip_latin1_and_utf8():
    arr = np.zeros((4, 4, 3), np.uint8)
    text = {"scenecast:params": '{"seed": 3}', "prompt": "a cat ☃ on a mat"}
    assert read_png_text(encode_png(arr, text=text)) == text
    with pytest.raises(ValueError, match="1-79"):
        encode_png(arr, text={"": "x"})


def test_flat_control_image_compresses_small():
    arr = np.zeros((512, 512, 3), np.uint8)
    arr[100:300, 50:400] = (128, 128, 255)
    assert len(encode_png(arr)) < 8000  # raw: 786 kB


def test_bad_input_is_refused_with_reasons():
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((4, 4, 5), np.uint8))
    good = encode_png(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="signature"):
        decode_png(b"GIF89a" + good)
    corrupt = bytearray(good)
    corrupt[-20] ^= 0xFF  # inside IDAT
    with pytest.raises(ValueError, match="CRC"):
        decode_png(bytes(corrupt))
    with pytest.raises(ValueError, match="IEND"):
        decode_png(good[:-12])
    interlaced = bytearray(good)
    ihdr = bytearray(interlaced[16:29])
    ihdr[-1] = 1
    interlaced[16:29] = ihdr
    interlaced[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    with pytest.raises(ValueError, match="interlaced"):
        decode_png(bytes(interlaced))


def _idat(png):
    from addon.core.png import _chunks

    return b"".join(body for kind, body in _chunks(png) if kind == b"IDAT")


def _replace_idat(png, data):
    from addon.core.png import _chunk, _chunks

    out = [png[:8]]
    for kind, body in _chunks(png):
        if kind == b"IDAT":
            continue
        if kind == b"IEND":
            out.append(_chunk(b"IDAT", data))
        out.append(_chunk(kind, body))
    return b"".join(out)


@pytest.mark.skipif(not BACKEND_PYTHON.exists(), reason="backend venv (.venv, with Pillow) not built")
def test_interop_with_pillow_both_ways(tmp_path):
    """Pillow reads what we write, and we read what Pillow writes (adaptive filters, 16-bit too)."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, size=(61, 83, 3), dtype=np.uint8)
    base[:30] = np.linspace(0, 255, 83, dtype=np.uint8)[None, :, None]  # smooth half for Avg/Paeth
    (tmp_path / "ours.png").write_bytes(encode_png(base, text={"k": "v"}))
    np.save(tmp_path / "ours.npy", base)
    script = f"""
import numpy as np
from PIL import Image
d = r"{tmp_path}"
ours = np.asarray(Image.open(d + "/ours.png"))
assert np.array_equal(ours, np.load(d + "/ours.npy")), "Pillow decodes our PNG differently"
assert Image.open(d + "/ours.png").text == {{"k": "v"}}
base = np.load(d + "/ours.npy")
Image.fromarray(base).save(d + "/pil.png")
Image.fromarray(base).convert("RGBA").save(d + "/pil_rgba.png", optimize=True)
Image.fromarray((base[..., 0].astype(np.uint16) * 257)).save(d + "/pil16.png")
Image.fromarray(base[..., 0] > 127).save(d + "/pil1.png")
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(BACKEND_PYTHON), "-c", script], capture_output=True, text=True, env=env)
    if "No module named 'PIL'" in result.stderr:
        pytest.skip("Pillow is not installed in .venv")
    assert result.returncode == 0, result.stderr
    assert np.array_equal(decode_png((tmp_path / "pil.png").read_bytes()), base)
    rgba = decode_png((tmp_path / "pil_rgba.png").read_bytes())
    assert np.array_equal(rgba[..., :3], base) and (rgba[..., 3] == 255).all()
    wide = decode_png((tmp_path / "pil16.png").read_bytes())
    assert wide.dtype == np.uint16 and np.array_equal(wide, base[..., 0].astype(np.uint16) * 257)
    bits = decode_png((tmp_path / "pil1.png").read_bytes())
    assert np.array_equal(bits, np.where(base[..., 0] > 127, 255, 0))


def test_control_png_sends_grey_control_images_as_one_channel_exactly():
    from addon.core.png import control_png, decode_png, encode_png

    ramp = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    grey3 = np.repeat(ramp[:, :, None], 3, axis=2)
    data = control_png(grey3)
    assert len(data) < len(encode_png(grey3, compress_level=1, filters="up"))
    assert decode_png(data).shape == (64, 256)  # one channel on the wire
    np.testing.assert_array_equal(decode_png(data), ramp)


def test_control_png_keeps_colour_images_and_passes_png_bytes_through():
    from addon.core.png import control_png, decode_png

    rng = np.random.default_rng(3)
    colour = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(control_png(colour)), colour)
    already = control_png(colour)
    assert control_png(already) == already
