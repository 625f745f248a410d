"""Run the benchmarks, each against its baseline from the same run, and collect their RATIO lines.

    .venv/bin/python bench/run.py          # the quick ones (a few minutes on 2 cores)
    .venv/bin/python bench/run.py --slow   # also the real-size SD1.5 step (many minutes on a CPU)

Each benchmark runs in the environment it belongs to: backend benchmarks in the backend's venv, the
add-on's (pass extraction, the client round trip) in Blender's. Record what they print, with the
machine, in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKEND_PY = ROOT / ".venv" / "bin" / "python"
BLENDER_PY = ROOT / ".venv-blender" / "bin" / "python"

QUICK = [
    (BACKEND_PY, ["bench/overhead.py"]),
    (BACKEND_PY, ["bench/cold_start.py"]),
    (BACKEND_PY, ["bench/controlnet_swap.py"]),
    (BLENDER_PY, ["bench/passes.py"]),
    (BLENDER_PY, ["bench/warp_accuracy.py"]),
    (BLENDER_PY, ["bench/roundtrip.py"]),
    (BLENDER_PY, ["bench/wire.py"]),
    (BLENDER_PY, ["bench/ready_results.py", "--size", "512"]),
    (BLENDER_PY, ["bench/frames.py"]),
    (BLENDER_PY, ["bench/texture_roundtrip.py"]),
    (BLENDER_PY, ["bench/projection_speed.py"]),
]
SLOW = [
    (BACKEND_PY, ["bench/sd15_step.py", "--variants", "fp32,channels_last"]),
]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} logical CPUs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", action="store_true", help="also run the real-size SD1.5 step benchmark")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    ratios: list[str] = []
    failed: list[str] = []
    for python, argv in QUICK + (SLOW if args.slow else []):
        print(f"\n== {' '.join(argv)}", flush=True)
        proc = subprocess.Popen([str(python), *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith("RATIO "):
                ratios.append(line.strip())
        if proc.wait() != 0:
            failed.append(argv[0])
    print("\n== summary")
    print("\n".join(ratios) or "no ratios")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
