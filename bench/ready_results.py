"""How much sooner a job's result is in the add-on's hands when ``run_job`` takes it at ``ready``.

    .venv-blender/bin/python bench/ready_results.py [--size 1024] [--repeat 3]

Runs in Blender's Python environment against a real ``python -m backend serve`` (backend venv,
``builtin:tiny``, one step) with the 1024² pass set of ``bench/roundtrip.py`` sent as raw pixels. Two
ways, alternated in one run, the same upload in both:

- files (the add-on before, the baseline): ``client.wait`` to ``done`` (after the backend's PNG
  encode), download the PNG, write it atomically, read it back and decode it with ``core.png`` — what
  ``run_job`` plus a feature's ``read_result`` did for every texturing view and frame.
- ready (now): ``core.remote_job.run_job`` returns the pixels at ``ready``; its PNG is saved by a
  background thread (``outcome.wait_files()``, timed separately: what a feature waits at the end).

Each trip's time runs from submitting to the pixels in hand, less the job's own stage seconds (from
its record), so the job's size drops out. Prints ``RATIO ready_results_vs_files <ready / files>``.
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

from addon.core import remote_job  # noqa: E402
from addon.core.client import BackendClient  # noqa: E402
from addon.core.files import write_atomic  # noqa: E402
from addon.core.png import decode_png  # noqa: E402
from roundtrip import free_port, pass_set, start_backend, wait_healthy  # noqa: E402

UNITS = [{"image": key, "type": key} for key in ("depth", "normal", "edges", "segmentation")]


def params(size: int) -> dict:
    return dict(prompt="a rock on a floor", seed=1, steps=1, guidance=7.5, width=size, height=size)


def job_seconds(client: BackendClient, job: str) -> float:
    client.wait(job)  # the record exists once the PNG is written: outside the timed part
    return sum(stage["seconds"] for stage in client.record(job)["resolved"]["stages"])


def files_trip(client: BackendClient, images: dict[str, np.ndarray], size: int, out: Path) -> tuple[float, float]:
    """The old way: results from the PNG file the add-on wrote and decodes."""
    spec = remote_job.build_job_spec(model="builtin:tiny", units=UNITS, **params(size))
    t0 = time.perf_counter()
    job = client.submit(spec, images)
    assert client.wait(job)["status"] == "done"
    path = out / f"files_{job}.png"
    write_atomic(path, client.result(job, 0))
    pixels = decode_png(path.read_bytes())
    wall = time.perf_counter() - t0
    assert pixels.shape == (size, size, 3)
    return wall, job_seconds(client, job)


def ready_trip(url: str, images: dict[str, np.ndarray], size: int, out: Path) -> tuple[float, float, float]:
    """Now: ``run_job``'s pixels; and how long after them its PNG is on disk."""
    req = remote_job.JobRequest(server=url, params=params(size), units=UNITS, images=images, output_dir=str(out),
                                name="ready", model="builtin:tiny", auto_start=False)
    t0 = time.perf_counter()
    outcome = remote_job.run_job(req)
    wall = time.perf_counter() - t0
    outcome.wait_files()
    saved = time.perf_counter() - t0 - wall
    assert outcome.image(0).shape == (size, size, 3) and outcome.saver is not None
    return wall, job_seconds(BackendClient(url, timeout=120), outcome.job_id), saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    images = pass_set(args.size)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    files: list[tuple[float, float]] = []
    ready: list[tuple[float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="scenecast-ready-") as data, \
            tempfile.TemporaryDirectory(prefix="scenecast-ready-out-") as results:
        server = start_backend(port, data)
        out = Path(results)  # the add-on's output folder (the backend sweeps empty folders in its own)
        try:
            client = BackendClient(url, timeout=120)
            wait_healthy(client, server)
            files_trip(client, images, args.size, out)  # warm-up both: model build, first allocations
            ready_trip(url, images, args.size, out)
            for _ in range(args.repeat):  # alternated, so load drift hits both alike
                files.append(files_trip(client, images, args.size, out))
                ready.append(ready_trip(url, images, args.size, out))
        finally:
            server.terminate()
            server.wait(10)
    beyond_files = statistics.median(w - j for w, j in files) * 1000
    beyond_ready = statistics.median(w - j for w, j, _ in ready) * 1000
    print(f"ready_results: {args.size}² pass set as raw pixels, builtin:tiny 1 step, {args.repeat} trips each")
    print(f"  files (before): submit → pixels {statistics.median(w for w, _ in files) * 1000:8.1f} ms,"
          f" {beyond_files:7.1f} ms beyond the job (medians)")
    print(f"  ready (now):    submit → pixels {statistics.median(w for w, _, _ in ready) * 1000:8.1f} ms,"
          f" {beyond_ready:7.1f} ms beyond the job; PNG on disk {statistics.median(s for _, _, s in ready) * 1000:.1f}"
          " ms after the pixels (medians)")
    for name, rows in (("files", files), ("ready", ready)):
        print(f"  {name} trips (wall, job) s: " + ", ".join(f"({r[0]:.3f}, {r[1]:.3f})" for r in rows))
    print(f"  pixels in hand {beyond_files - beyond_ready:.1f} ms sooner")
    print(f"RATIO ready_results_vs_files {beyond_ready / beyond_files:.3f}")


if __name__ == "__main__":
    main()
