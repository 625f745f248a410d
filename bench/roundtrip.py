"""Round trip of a 1024² pass set from the add-on's client to the backend and back, on loopback.

    .venv-blender/bin/python bench/roundtrip.py [--size 1024] [--repeat 5]

Runs in Blender's Python environment (numpy < 2, no PIL) with the add-on's own bpy-free client, the
way the add-on does it: encode the four control images (depth, normal, edges, segmentation) with
``core.png.control_png``, submit them as one multipart job, follow the WebSocket events to ``done``,
download the result and write its bytes to a file (the add-on then hands that file to Blender's own
PNG loader, so no Python decode sits on this path). The backend is a real ``python -m backend serve`` process from the backend's
venv, on ``builtin:tiny`` with one step. Baseline, same run: the job itself — the seconds the
backend's stages report in the job's record. Overhead = client wall time − job seconds.
Prints ``RATIO roundtrip_overhead_ms_vs_30 <overhead/30 ms>`` (target < 1).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from addon.core import conventions, edges, segmentation  # noqa: E402
from addon.core.client import BackendClient  # noqa: E402
from addon.core.png import control_png  # noqa: E402

BACKEND_PYTHON = os.environ.get("SCENECAST_BACKEND_PYTHON", str(ROOT / ".venv" / "bin" / "python"))


def pass_set(size: int) -> dict[str, np.ndarray]:
    """Control images of a sphere in front of a tilted floor, made with the add-on's conventions."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float32)
    x, y = (u + 0.5) / size * 2 - 1, 1 - (v + 0.5) / size * 2  # y up, row 0 at the top
    floor = np.where(y < 0.2, 3.0 / np.maximum(0.2 - y, 1e-3) * 0.1 + 2.0, np.inf).astype(np.float32)
    r2 = x**2 + (y - 0.3) ** 2
    sphere = r2 < 0.25
    nz = np.sqrt(np.clip(0.25 - r2, 0, None)) / 0.5
    depth = np.where(sphere, 4.0 - nz, floor).astype(np.float32)
    normal = np.zeros((size, size, 3), np.float32)
    normal[..., 1] = np.where(np.isfinite(floor), 1.0, 0.0)
    normal[sphere] = np.stack([x / 0.5, (y - 0.3) / 0.5, nz], -1)[sphere]
    ids = np.where(sphere, 1, np.where(np.isfinite(floor), 0, -1)).astype(np.int32)
    mask = ids >= 0
    rng = conventions.DepthRange(2.0, 40.0)
    return {
        "depth": conventions.depth_to_control(depth, rng),
        "normal": conventions.normals_to_control(normal, mask),
        "edges": edges.edges_to_control(edges.geometric_edges(depth, normal, ids)),
        "segmentation": segmentation.segmentation_to_control(ids, {0: "floor", 1: "rock"}),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(client: BackendClient, server: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll ``/v1/health`` until the started backend answers; exit when it dies or ``timeout`` passes."""
    deadline = time.time() + timeout
    while True:
        try:
            client.health()
            return
        except Exception:
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit("the backend did not become healthy")
            time.sleep(0.1)


def start_backend(port: int, data: str) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", SCENECAST_DATA=data, PYTHONPATH=str(ROOT))
    return subprocess.Popen([BACKEND_PYTHON, "-m", "backend", "serve", "--port", str(port), "--device", "cpu",
                             "--out", data], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_trip(client: BackendClient, images: dict[str, np.ndarray], size: int, out: Path) -> tuple[float, float]:
    t0 = time.perf_counter()
    pngs = {key: control_png(img) for key, img in images.items()}
    spec = {"model": "builtin:tiny", "prompt": "a rock on a floor", "seed": 1, "steps": 1, "guidance": 7.5,
            "width": size, "height": size,
            "stages": [{"type": "generate", "controlnets": [{"image": key, "type": key} for key in images]}]}
    job = client.submit(spec, pngs)
    status = client.wait(job)
    result = client.result(job, 0)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(result)
    os.replace(tmp, out)
    wall = time.perf_counter() - t0
    assert struct.unpack(">II", result[16:24]) == (size, size), "the result is not a size x size PNG"
    job_seconds = sum(stage["seconds"] for stage in client.record(job)["resolved"]["stages"])
    assert status["status"] == "done", status
    return wall, job_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    images = pass_set(args.size)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="scenecast-roundtrip-") as data:
        server = start_backend(port, data)
        try:
            client = BackendClient(f"http://127.0.0.1:{port}", timeout=60)
            wait_healthy(client, server)
            out = Path(data) / "result.png"
            one_trip(client, images, args.size, out)  # warm-up: model build, first allocation
            trips = [one_trip(client, images, args.size, out) for _ in range(args.repeat)]
        finally:
            server.terminate()
            server.wait(10)
    overhead = statistics.median(w - j for w, j in trips) * 1000
    print(f"roundtrip: {args.size}² pass set (4 control images), builtin:tiny 1 step, {args.repeat} trips")
    print(f"  client wall  {statistics.median(w for w, _ in trips) * 1000:8.1f} ms (median)")
    print(f"  job itself   {statistics.median(j for _, j in trips) * 1000:8.1f} ms (median, from the record)")
    print(f"  overhead     {overhead:8.1f} ms (median of wall − job)")
    print(f"RATIO roundtrip_overhead_ms_vs_30 {overhead / 30:.3f}")


if __name__ == "__main__":
    main()
