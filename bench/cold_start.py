"""Cold start: ``python -m backend serve`` from process start to the first healthy answer.

    .venv/bin/python bench/cold_start.py [--repeat 3]

Baseline, same run: a bare ``python -c "import torch, diffusers, transformers"`` — the imports any
backend of ours must pay before it can do anything. Measured: spawn the server, poll ``/v1/health``
every 20 ms until it answers 200. Prints medians and ``RATIO cold_start <server/imports>``.
"""

from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def imports_floor() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, diffusers, transformers"], check=True, cwd=ROOT)
    return time.perf_counter() - t0


def server_to_healthy() -> float:
    port = free_port()
    data = tempfile.mkdtemp(prefix="scenecast-cold-")
    env = dict(os.environ, HF_HUB_OFFLINE="1", SCENECAST_DATA=data)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "backend", "serve", "--port", str(port), "--device", "cpu",
                             "--log-level", "warning"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit("the server exited during start")
                time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    imports_floor()  # warm the OS file cache for both
    floor, server = [], []
    for _ in range(args.repeat):
        floor.append(imports_floor())
        server.append(server_to_healthy())
    f, s = statistics.median(floor), statistics.median(server)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print("imports s: " + " ".join(f"{t:.2f}" for t in floor))
    print("server to healthy s: " + " ".join(f"{t:.2f}" for t in server))
    print(f"median imports {f:.2f} s, server to healthy {s:.2f} s")
    print(f"RATIO cold_start {s / f:.3f}")


if __name__ == "__main__":
    main()
