"""Server overhead: one job through the real server process against the same pipeline call in-process.

    .venv/bin/python bench/overhead.py [--size 128] [--steps 8] [--repeat 7] [--threads 1]

Baseline: ``backend.pipelines.run_job`` called directly in this process with the decoded control
images, the same spec (builtin:tiny, two ControlNets), the same device and thread count. Measured: the
whole client round trip on a running ``python -m backend serve``: multipart upload of the PNGs, queue,
the same ``run_job``, the result PNG with its text chunks written atomically, events over the
WebSocket until ``done``, and the result downloaded. Runs alternate so load drift hits both alike;
medians after one warm-up each (model build). Prints ``RATIO overhead <server/direct>`` (target ≤ 1.05).
On a loaded machine the two medians drift apart by more than the overhead itself, so it also prints
``RATIO overhead_fixed``: (direct + the server's fixed cost) / direct, where the fixed cost is each server
job's round trip minus the stage seconds the pipeline measured inside that same job.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
sys.path.insert(0, str(ROOT))


def control_images(size: int) -> dict[str, bytes]:
    y, x = np.mgrid[0:size, 0:size]
    depth = ((x + y) * 255 // (2 * size - 2)).astype(np.uint8)
    edges = (((x % 16) == 0) | ((y % 16) == 0)).astype(np.uint8) * 255
    out = {}
    for key, img in (("depth", depth), ("edges", edges)):
        buf = io.BytesIO()
        Image.fromarray(np.repeat(img[:, :, None], 3, axis=2)).save(buf, format="PNG")
        out[key] = buf.getvalue()
    return out


class Quiet:
    """A Progress for the direct call: it does what the pipeline needs (no cancel) and nothing else."""

    def stage(self, *a): pass
    def step(self, *a): pass
    def preview(self, *a): pass
    def download(self, *a): pass
    def cancelled(self) -> bool: return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from backend.cli_remote import encode_multipart
    from backend.jobs.images import decode_png
    from backend.models import ModelManager
    from backend.pipelines import run_job
    from backend.spec import JobSpec

    torch.set_num_threads(args.threads)
    spec_dict = {"model": "builtin:tiny", "prompt": "bench", "width": args.size, "height": args.size, "seed": 3,
                 "steps": args.steps, "stages": [{"type": "generate", "controlnets": [
                     {"image": "depth", "type": "depth"}, {"image": "edges", "type": "edges", "weight": 0.6}]}]}
    pngs = control_images(args.size)
    spec = JobSpec.model_validate(spec_dict)
    images = {k: decode_png(v, k) for k, v in pngs.items()}
    models = ModelManager(device="cpu")

    data = Path(tempfile.mkdtemp(prefix="scenecast-bench-"))
    port = free_port()
    env = dict(os.environ, SCENECAST_DATA=str(data))
    proc = subprocess.Popen([sys.executable, "-m", "backend", "serve", "--port", str(port), "--device", "cpu",
                             "--threads", str(args.threads), "--log-level", "warning"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=(data / "server.log").open("wb"))
    url = f"http://127.0.0.1:{port}"
    from websockets.sync.client import connect

    fixed: list[float] = []

    def via_server() -> float:
        t0 = time.perf_counter()
        body, ctype = encode_multipart({"spec": json.dumps(spec_dict)}, pngs)
        req = urllib.request.Request(url + "/v1/jobs", data=body, method="POST", headers={"Content-Type": ctype})
        job_id = json.loads(urllib.request.urlopen(req).read())["id"]
        with connect(f"ws://127.0.0.1:{port}/v1/jobs/{job_id}/events") as ws:
            for frame in ws:
                if isinstance(frame, str) and json.loads(frame)["type"] in ("done", "failed", "cancelled"):
                    event = json.loads(frame)
                    break
        assert event["type"] == "done", event
        png = urllib.request.urlopen(url + event["results"][0]["url"]).read()
        assert png.startswith(b"\x89PNG")
        elapsed = time.perf_counter() - t0
        record = json.loads(urllib.request.urlopen(url + f"/v1/jobs/{job_id}/record").read())
        # The same job's own stage time, as the pipeline measured it inside the server: what is left is
        # the server's fixed cost for this job, immune to the load drift between separate runs.
        fixed.append(elapsed - sum(stage["seconds"] for stage in record["resolved"]["stages"]))
        return elapsed

    def direct() -> float:
        t0 = time.perf_counter()
        result = run_job(spec, images, models, Quiet())
        assert result.images[0].shape == (args.size, args.size, 3)
        return time.perf_counter() - t0

    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(url + "/v1/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server did not start:\n{(data / 'server.log').read_text()[-3000:]}")
                time.sleep(0.2)
        via_server(), direct()  # warm-up: builds and caches the models on both sides
        server_t, direct_t = [], []
        for _ in range(args.repeat):
            server_t.append(via_server())
            direct_t.append(direct())
    finally:
        proc.terminate()
        proc.wait(15)

    s, d = statistics.median(server_t), statistics.median(direct_t)
    f = statistics.median(fixed[1:])
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{args.threads} thread(s), load {os.getloadavg()[0]:.1f}")
    print(f"job: builtin:tiny, {args.size}x{args.size}, {args.steps} steps, 2 ControlNets, {args.repeat} runs each")
    print("server s: " + " ".join(f"{t:.3f}" for t in server_t))
    print("direct s: " + " ".join(f"{t:.3f}" for t in direct_t))
    print(f"median server {s:.3f} s, direct {d:.3f} s, difference {1000 * (s - d):.0f} ms")
    print("server round trip minus its pipeline stage time, ms: " + " ".join(f"{1000 * t:.0f}" for t in fixed[1:]))
    print(f"median fixed cost per job through the server: {1000 * f:.0f} ms = {100 * f / d:.1f}% of the direct job")
    print(f"RATIO overhead {s / d:.3f}")
    print(f"RATIO overhead_fixed {(d + f) / d:.3f}")


if __name__ == "__main__":
    main()
