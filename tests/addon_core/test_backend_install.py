"""Install Backend, offline: a wheel folder built here (the real scenecast-backend wheel and two tiny
pure packages, one depending on the other) stands in for the package index; the real steps run
(venv, pip, the backend's --version), with progress, cancel, and the error for a missing package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest

from addon.core import backend_install as bi
from addon.core.pip_progress import PipProgress
from addon.core.torch_build import TorchBuild, cuda_build, parse_nvidia_smi, parse_rocm

ROOT = Path(__file__).resolve().parents[2]
BUILDER = os.environ.get("SCENECAST_BACKEND_PYTHON", "")  # has setuptools >= 77 for the backend's pyproject
needs_builder = pytest.mark.skipif(not BUILDER, reason="needs SCENECAST_BACKEND_PYTHON (make test sets it)")
CPU = TorchBuild("cpu", "no GPU found", None)


def build(src: Path, out: Path) -> None:
    subprocess.run([BUILDER, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "--disable-pip-version-check", "-w", str(out), str(src)], check=True, capture_output=True,
                   timeout=300)


def tiny_package(root: Path, name: str, requires: list[str]) -> Path:
    module = name.replace("-", "_")
    (root / name / module).mkdir(parents=True)
    (root / name / module / "__init__.py").write_text(f"NAME = {name!r}\n")
    deps = ", ".join(f'"{r}"' for r in requires)
    (root / name / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "1.0"\ndependencies = [{deps}]\n')
    return root / name


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BUILDER:
        pytest.skip("needs SCENECAST_BACKEND_PYTHON")
    src = tmp_path_factory.mktemp("src")
    out = tmp_path_factory.mktemp("wheels")
    build(tiny_package(src, "sc-tiny-alpha", ["sc-tiny-beta==1.0"]), out)
    build(tiny_package(src, "sc-tiny-beta", []), out)
    backend = src / "backend-src"
    backend.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, backend / name)
    for name in ("backend", "presets"):
        shutil.copytree(ROOT / name, backend / name, ignore=shutil.ignore_patterns("__pycache__"))
    build(backend, out)
    return out


@pytest.fixture(autouse=True)
def no_machine_pip_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's pip config adds find-links and local indexes (one holds torch): the tests see only
    the folder they build."""
    for name in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)


def plan(tmp_path: Path, wheels: Path, **kw) -> bi.InstallPlan:  # noqa: ANN003
    args = dict(allow_online=False, find_links=[str(wheels)], base_python=sys.executable, torch=CPU,
                backend_source="scenecast-backend", torch_requirement="sc-tiny-alpha", backend_deps=False)
    args.update(kw)
    return bi.make_plan(tmp_path / "venv", **args)


@needs_builder
def test_offline_install_from_a_wheel_folder_reports_progress_and_returns_the_backend_python(
        tmp_path: Path, wheels: Path) -> None:
    events: list[bi.InstallEvent] = []
    p = plan(tmp_path, wheels)
    assert "offline, only from" in p.describe() and "cpu" in p.describe()
    python = bi.run_install(p, events.append, log_path=str(tmp_path / "install.log"))
    assert python == str(tmp_path / "venv" / "bin" / "python")
    version = subprocess.run([python, "-m", "backend", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert version.stdout.strip() == f"scenecast-backend {bi.BACKEND_VERSION} (protocol 1)"
    found = subprocess.run([python, "-c", "import sc_tiny_alpha, sc_tiny_beta, backend; print(backend.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert found.stdout.startswith(str(tmp_path / "venv")), found.stderr  # installed, not the checkout
    assert [e.step for e in events if e.kind == "step"] == [0, 1, 2, 3]
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and events[-1].kind == "done" and events[-1].fraction == 1.0
    messages = [e.message for e in events]
    assert any(m.startswith("Collecting sc_tiny_beta-1.0") for m in messages)  # the dependency was resolved
    assert any(m.startswith("Installed ") and "sc-tiny-alpha-1.0" in m for m in messages)
    assert "Successfully installed" in (tmp_path / "install.log").read_text()
    # Blender's own Python is untouched: nothing went into the interpreter that ran the install
    assert subprocess.run([sys.executable, "-c", "import sc_tiny_alpha"], capture_output=True).returncode != 0


@needs_builder
def test_a_package_missing_from_the_folder_names_it_and_leaves_nothing(tmp_path: Path, wheels: Path) -> None:
    p = plan(tmp_path, wheels, torch_requirement=bi.TORCH_REQUIREMENT)
    with pytest.raises(bi.InstallError) as info:
        bi.run_install(p)
    assert f"{bi.TORCH_REQUIREMENT} is not available from {wheels}" in info.value.message
    assert "Allow Online Access" in info.value.fix
    assert not (tmp_path / "venv").exists()


@needs_builder
def test_cancel_stops_the_install_and_removes_the_half_made_environment(tmp_path: Path, wheels: Path) -> None:
    cancel = threading.Event()
    events: list[bi.InstallEvent] = []

    def on_event(event: bi.InstallEvent) -> None:
        events.append(event)
        if event.step == 1 and event.kind == "progress":
            cancel.set()  # as the user presses Esc while pip collects

    with pytest.raises(bi.InstallCancelled):
        bi.run_install(plan(tmp_path, wheels), on_event, cancel)
    assert not (tmp_path / "venv").exists()
    assert not any(e.step >= 2 for e in events)  # the backend step never started


def test_offline_without_a_wheel_folder_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(bi.InstallError) as info:
        bi.make_plan(tmp_path / "venv", allow_online=False, base_python=sys.executable, torch=CPU)
    assert "online access is off" in info.value.message and "Allow Online Access" in info.value.fix
    assert not (tmp_path / "venv").exists()


def test_online_plan_takes_torch_from_the_build_index_and_the_backend_from_the_checkout(tmp_path: Path) -> None:
    build = TorchBuild("cu128", "NVIDIA RTX", "https://download.pytorch.org/whl/cu128")
    p = bi.make_plan(tmp_path / "venv", allow_online=True, base_python=sys.executable, torch=build)
    steps = p.steps()
    assert steps[0].argv == [sys.executable, "-m", "venv", str(tmp_path / "venv")]
    torch_step = steps[1].argv
    assert torch_step[torch_step.index("--index-url") + 1] == build.index_url and torch_step[-1] == bi.TORCH_REQUIREMENT
    assert "--no-index" not in torch_step and "--index-url" not in steps[2].argv
    assert steps[2].argv[-1] == str(ROOT)  # running from a checkout: the backend comes from it
    assert steps[3].argv == [p.backend_python, "-m", "backend", "--version"]
    assert "cu128" in p.describe() and build.index_url in p.describe()


def test_pins_match_the_backend() -> None:
    from backend.version import __version__

    assert bi.BACKEND_VERSION == __version__
    assert bi.TORCH_REQUIREMENT in (ROOT / "backend" / "requirements.txt").read_text().splitlines()
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"] == "scenecast-backend"


NVIDIA_SMI = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 570.124.06             Driver Version: 570.124.06     CUDA Version: 12.8     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
|=========================================+========================+======================|
|   0  NVIDIA H100 80GB HBM3          On  |   00000000:00:07.0 Off |                    0 |
| N/A   34C    P0             69W /  700W |       1MiB /  81559MiB |      0%      Default |
+-----------------------------------------+------------------------+----------------------+
| Processes:                                                                              |
|    0   N/A  N/A      1234      C   python                                     500MiB |
+-----------------------------------------------------------------------------------------+
"""


def test_gpu_tools_output_picks_the_torch_build() -> None:
    assert parse_nvidia_smi(NVIDIA_SMI) == ("NVIDIA H100 80GB HBM3", (12, 8))
    assert cuda_build((12, 8), "H100").name == "cu128"
    assert cuda_build((13, 1), "B200").name == "cu130"
    assert cuda_build((12, 7), "RTX").name == "cu126"
    old = cuda_build((11, 8), "GTX 1080")
    assert old.name == "cpu" and "Update the NVIDIA driver" in old.note
    assert parse_nvidia_smi("command not found") is None
    assert parse_rocm("Agent 2\n  Name:                    gfx1100\n  Marketing Name: Radeon RX 7900") == "gfx1100"


def test_pip_output_becomes_progress() -> None:
    progress = PipProgress()
    lines = ["Looking in links: /w", "Processing /w/sc_tiny_alpha-1.0-py3-none-any.whl",
             "Collecting sc-tiny-beta==1.0 (from sc-tiny-alpha)",
             "  Downloading torch-2.13.0%2Bcu128-cp311-cp311-manylinux_2_28_x86_64.whl (845.2 MB)",
             "Installing collected packages: sc-tiny-beta, sc-tiny-alpha",
             "Successfully installed sc-tiny-alpha-1.0 sc-tiny-beta-1.0"]
    updates = [progress.feed(line) for line in lines]
    assert updates[0] is None
    assert [u.message for u in updates[1:]] == [
        "Collecting sc_tiny_alpha-1.0-py3-none-any.whl", "Collecting sc-tiny-beta==1.0 (from sc-tiny-alpha)",
        "Downloading torch-2.13.0%2Bcu128-cp311-cp311-manylinux_2_28_x86_64.whl (845.2 MB)",
        "Installing 2 packages", "Installed sc-tiny-alpha-1.0 sc-tiny-beta-1.0"]
    fractions = [u.fraction for u in updates[1:]]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
