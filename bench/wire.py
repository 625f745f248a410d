"""The wire on loopback: a 1024² pass set to the backend and its result back, PNG against raw pixels.

    .venv-blender/bin/python bench/wire.py [--size 1024] [--repeat 5]

Runs in Blender's Python environment with the add-on's own bpy-free client, against a real
``python -m backend serve`` (backend venv, ``builtin:tiny``, one step), the four control images of
``bench/roundtrip.py``. Two ways, alternated in one run:

- png (protocol 1 as before, the baseline): ``control_png`` each image, submit, follow the events
  to ``done`` (the backend decodes the PNGs when the job starts and encodes the result PNG with its
  metadata before ``done``), download the PNG.
- raw (docs/protocol.md, "Raw pixels"): the client sends ``image/x-scenecast-pixels`` (grey images
  as one channel), follows the events to
  ``ready`` (results handed over before the PNG is written), download the result's pixels.

Overhead = client wall time − the seconds the job's stages report in its record. Prints
``RATIO wire_overhead_ms_vs_30 <raw overhead / 30 ms>`` (target < 1) and
``RATIO wire_raw_vs_png <raw overhead / png overhead>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from addon.core.client import BackendClient  # noqa: E402
from addon.core.png import control_png  # noqa: E402
from roundtrip import free_port, pass_set, start_backend, wait_healthy  # noqa: E402


def spec(size: int, keys: list[str]) -> dict:
    return {"model": "builtin:tiny", "prompt": "a rock on a floor", "seed": 1, "steps": 1, "guidance": 7.5,
            "width": size, "height": size,
            "stages": [{"type": "generate", "controlnets": [{"image": key, "type": key} for key in keys]}]}


def job_seconds(client: BackendClient, job: str) -> float:
    client.wait(job)  # the record exists once the PNG is written: outside the timed part
    return sum(stage["seconds"] for stage in client.record(job)["resolved"]["stages"])


def png_trip(client: BackendClient, images: dict[str, np.ndarray], size: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    job = client.submit(spec(size, list(images)), {key: control_png(img) for key, img in images.items()})
    assert client.wait(job)["status"] == "done"
    result = client.result(job, 0)
    wall = time.perf_counter() - t0
    assert result.startswith(b"\x89PNG")
    return wall, job_seconds(client, job)


def raw_trip(client: BackendClient, images: dict[str, np.ndarray], size: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    job = client.submit(spec(size, list(images)), images)  # raw pixels (grey in one channel), as the client chooses
    result = client.wait_pixels(job)[0]
    wall = time.perf_counter() - t0
    assert result.shape == (size, size, 3)
    return wall, job_seconds(client, job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    images = pass_set(args.size)
    port = free_port()
    trips: dict[str, list[tuple[float, float]]] = {"png": [], "raw": []}
    with tempfile.TemporaryDirectory(prefix="scenecast-wire-") as data:
        server = start_backend(port, data)
        try:
            client = BackendClient(f"http://127.0.0.1:{port}", timeout=120)
            wait_healthy(client, server)
            png_trip(client, images, args.size)  # warm-up both: model build, first allocations
            raw_trip(client, images, args.size)
            for _ in range(args.repeat):  # alternated, so load drift hits both alike
                trips["png"].append(png_trip(client, images, args.size))
                trips["raw"].append(raw_trip(client, images, args.size))
        finally:
            server.terminate()
            server.wait(10)
    print(f"wire: {args.size}² pass set ({len(images)} control images), builtin:tiny 1 step, {args.repeat} trips each")
    overhead = {}
    for way, rows in trips.items():
        overhead[way] = statistics.median(w - j for w, j in rows) * 1000
        print(f"  {way}: client wall {statistics.median(w for w, _ in rows) * 1000:8.1f} ms, job"
              f" {statistics.median(j for _, j in rows) * 1000:8.1f} ms, overhead {overhead[way]:7.1f} ms (medians)")
    print(f"RATIO wire_overhead_ms_vs_30 {overhead['raw'] / 30:.3f}")
    print(f"RATIO wire_raw_vs_png {overhead['raw'] / overhead['png']:.3f}")


if __name__ == "__main__":
    main()
