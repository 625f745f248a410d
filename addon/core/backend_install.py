"""Install Backend: a virtual environment of its own with the right PyTorch build and the Scenecast
backend in it, made from the add-on without a terminal. Krita AI Diffusion's managed server is the model.

- The venv goes into a folder the caller gives (the add-on: its user data folder), created by a
  separate Python (:func:`find_base_python`): nothing is ever installed into Blender's own Python.
- :func:`make_plan` decides everything first — base Python, PyTorch build (torch_build.py), where
  packages come from — so the UI can show it before anything starts. Online access off (Blender's
  *Allow Online Access*) refuses any download; a local folder of wheels (``find_links``) still works.
- :func:`run_install` runs the steps as subprocesses (``python -m venv``, ``pip install`` for torch
  from its index, then the backend, then a check that ``python -m backend --version`` answers),
  reports progress events parsed from pip's output, can be cancelled at any moment (the running pip
  is terminated, a venv this run created is removed), and returns the Backend Python path.

The backend package comes from (first found): a wheel shipped inside the extension
(``<add-on>/backend_dist/*.whl``, ``tools/build_extension.py --backend-wheel-python``), a
``scenecast_backend`` wheel in the wheel folder, the Scenecast checkout the add-on runs from, or PyPI
(``scenecast-backend==<version>``). Standard library only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ScenecastError
from .pip_progress import PipProgress
from .torch_build import TorchBuild, detect

#: What the backend pins (backend/requirements.txt); the torch step installs exactly this version.
TORCH_REQUIREMENT = "torch==2.13.0"
BACKEND_VERSION = "0.1.0"  # backend/version.py; tests/addon_core/test_backend_install.py keeps them equal
SUPPORTED_PYTHONS = ((3, 10), (3, 13))  # what the pinned torch publishes wheels for
ADDON_ROOT = Path(__file__).resolve().parents[1]


class InstallError(ScenecastError):
    """The install cannot start or failed; ``message`` says what, ``fix`` what to do."""

    default_fix = ("look at install.log beside the backend log, then press Install Backend again; or install the"
                   " backend by hand (pip install scenecast-backend) and set Backend Python")


class InstallCancelled(InstallError):
    """The user cancelled; nothing half-made is left behind."""

    default_fix = "press Install Backend again to start over"


@dataclass(frozen=True)
class InstallEvent:
    """One progress report. ``fraction`` is of the whole install (0..1); ``message`` a line for the status bar."""

    step: int  # 0-based index of the running step
    steps: int
    label: str  # the step ("Creating the environment", "Installing PyTorch cu128", ...)
    fraction: float
    message: str
    kind: str = "progress"  # step | progress | log | done


@dataclass(frozen=True)
class Step:
    label: str
    argv: list[str]
    weight: float  # share of the whole install's progress bar


@dataclass(frozen=True)
class InstallPlan:
    venv_dir: Path
    base_python: str
    torch: TorchBuild
    backend_source: str  # a wheel path, a source folder, or a requirement like scenecast-backend==0.1.0
    allow_online: bool
    find_links: tuple[str, ...] = ()
    torch_requirement: str = TORCH_REQUIREMENT
    backend_deps: bool = True  # False: the backend alone (its dependencies must be there already)

    @property
    def backend_python(self) -> str:
        return str(self.venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))

    def describe(self) -> str:
        """What will happen, for the user to read before it starts."""
        sources = ", ".join(self.find_links) if self.find_links else ""
        if not self.allow_online:
            where = f"offline, only from {sources}"
        else:
            where = "online" + (f" (first from {sources})" if sources else "")
        return (f"Install the Scenecast backend into {self.venv_dir} with {self.base_python}; "
                f"{self.torch.describe()}; backend from {self.backend_source}; {where}")

    def _pip(self, *args: str, index_url: str | None = None) -> list[str]:
        cmd = [self.backend_python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
               "--progress-bar", "off"]
        for folder in self.find_links:
            cmd += ["--find-links", folder]
        if not self.allow_online:
            cmd.append("--no-index")
        elif index_url:  # PyTorch's index also serves torch's own dependencies
            cmd += ["--index-url", index_url]
        return cmd + list(args)

    def steps(self) -> list[Step]:
        backend = [self.backend_source] + ([] if self.backend_deps else ["--no-deps"])
        return [
            Step("Creating the environment", [self.base_python, "-m", "venv", str(self.venv_dir)], 0.05),
            Step(f"Installing PyTorch ({self.torch.name})",
                 self._pip(self.torch_requirement, index_url=self.torch.index_url), 0.6),
            Step("Installing the Scenecast backend", self._pip(*backend), 0.3),
            Step("Checking the backend", [self.backend_python, "-m", "backend", "--version"], 0.05),
        ]


# -- choosing -------------------------------------------------------------------------------------------
def python_version(exe: str) -> tuple[int, int] | None:
    """The (major, minor) of ``exe`` when it runs and has ``venv`` and ``ensurepip``; else None."""
    try:
        done = subprocess.run([exe, "-c", "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30, env=_clean_env())
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.fullmatch(r"(\d+)\.(\d+)", done.stdout.strip()) if done.returncode == 0 else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def find_base_python(preferred: str = "") -> str:
    """A Python (3.10–3.13, with venv) to create the environment with: ``preferred``, then python3.12,
    3.11, 3.13, 3.10 and python3 on PATH, then the interpreter running this (Blender's bundled Python
    is fine as a *base*: the venv is separate, nothing is installed into Blender)."""
    names = [preferred] if preferred else []
    names += [shutil.which(n) or "" for n in ("python3.12", "python3.11", "python3.13", "python3.10", "python3")]
    names.append(getattr(sys, "_base_executable", "") or sys.executable)
    tried = []
    for exe in dict.fromkeys(n for n in names if n):
        version = python_version(exe)
        tried.append(f"{exe} ({'%d.%d' % version if version else 'no venv/ensurepip'})")
        if version and SUPPORTED_PYTHONS[0] <= version <= SUPPORTED_PYTHONS[1]:
            return exe
    raise InstallError(
        "no Python 3.10–3.13 with venv support was found to create the backend's environment"
        f" (tried: {', '.join(tried) or 'none'})",
        "install Python 3.11 or 3.12 (on Debian/Ubuntu also python3-venv), or set Base Python in the preferences",
    )


def default_backend_source(allow_online: bool, find_links: tuple[str, ...] = ()) -> str:
    """A wheel shipped in the extension, else one in a wheel folder given, else the checkout the add-on
    runs from, else PyPI."""
    shipped = sorted((ADDON_ROOT / "backend_dist").glob("scenecast_backend-*.whl"))
    if shipped:
        return str(shipped[-1])
    if any(any(Path(f).glob(f"scenecast_backend-{BACKEND_VERSION}-*.whl")) for f in find_links):
        return f"scenecast-backend=={BACKEND_VERSION}"  # pip finds it in the folder
    root = ADDON_ROOT.parent
    if (root / "pyproject.toml").is_file() and (root / "backend" / "__init__.py").is_file():
        return str(root)
    if not allow_online:
        raise InstallError("this add-on ships no backend package and online access is off",
                           "turn on Allow Online Access (Preferences › System), or give a folder holding the"
                           " scenecast_backend wheel")
    return f"scenecast-backend=={BACKEND_VERSION}"


def make_plan(venv_dir: str | Path, *, allow_online: bool, find_links: tuple[str, ...] | list[str] = (),
              base_python: str = "", backend_source: str = "", torch: TorchBuild | None = None,
              torch_requirement: str = TORCH_REQUIREMENT, backend_deps: bool = True) -> InstallPlan:
    """Everything the install will do, decided now (nothing is changed yet)."""
    links = tuple(str(Path(f).expanduser()) for f in find_links if str(f).strip())
    for folder in links:
        if not Path(folder).is_dir():
            raise InstallError(f"the wheel folder {folder} does not exist", "pick the folder that holds the wheels")
    if not allow_online and not links:
        raise InstallError(
            "installing the backend downloads PyTorch and its libraries, and Blender's online access is off",
            "turn on Allow Online Access (Preferences › System), or give a folder of wheels to install from",
        )
    return InstallPlan(
        venv_dir=Path(venv_dir).expanduser(), base_python=find_base_python(base_python),
        torch=torch or detect(), backend_source=backend_source or default_backend_source(allow_online, links),
        allow_online=allow_online, find_links=links, torch_requirement=torch_requirement, backend_deps=backend_deps,
    )


# -- running ------------------------------------------------------------------------------------------
def _clean_env() -> dict[str, str]:
    """The environment for child Pythons: without Blender's PYTHONHOME/PYTHONPATH, unbuffered."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    env.update(PYTHONUNBUFFERED="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


@dataclass
class _Runner:
    plan: InstallPlan
    on_event: Callable[[InstallEvent], None]
    cancel: threading.Event
    log_path: str | None
    lines: list[str] = field(default_factory=list)

    def run(self, index: int, steps: list[Step]) -> None:
        step = steps[index]
        done_before = sum(s.weight for s in steps[:index])
        emit = self.on_event
        emit(InstallEvent(index, len(steps), step.label, done_before, step.label + "…", "step"))
        progress = PipProgress()
        popen_kw: dict = {"start_new_session": True} if os.name != "nt" else {
            "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
        proc = subprocess.Popen(step.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=_clean_env(), stdin=subprocess.DEVNULL, **popen_kw)
        watcher = threading.Thread(target=self._kill_on_cancel, args=(proc,), daemon=True)
        watcher.start()
        self.lines = []
        log = open(self.log_path, "a", encoding="utf-8") if self.log_path else None
        try:
            for raw in proc.stdout:  # type: ignore[union-attr]
                line = raw.rstrip()
                self.lines.append(line)
                if log:
                    log.write(line + "\n")
                update = progress.feed(line)
                if update is not None:
                    emit(InstallEvent(index, len(steps), step.label, done_before + step.weight * update.fraction,
                                      update.message))
        finally:
            proc.wait()
            if log:
                log.close()
        if self.cancel.is_set():
            raise InstallCancelled("the backend install was cancelled", "start it again when you are ready")
        if proc.returncode != 0:
            raise self._failure(step, proc.returncode)
        emit(InstallEvent(index, len(steps), step.label, done_before + step.weight, f"{step.label}: done"))

    def _kill_on_cancel(self, proc: subprocess.Popen) -> None:
        while proc.poll() is None:
            if self.cancel.wait(0.1):
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                return

    def _failure(self, step: Step, code: int) -> InstallError:
        text = "\n".join(self.lines)
        missing = re.search(r"No matching distribution found for (\S+)", text)
        tail = "\n".join(self.lines[-12:])
        if missing:
            where = ", ".join(self.plan.find_links) or "the package index"
            fix = ("put its wheel into that folder, or turn on Allow Online Access to download it"
                   if not self.plan.allow_online else "check the internet connection (or the wheel folder) and try again")
            return InstallError(f"{step.label} failed: {missing.group(1)} is not available from {where}", fix)
        return InstallError(f"{step.label} failed (exit code {code}):\n{tail}",
                            "read the install log" + (f" at {self.log_path}" if self.log_path else "")
                            + "; fix what it names and install again")


def run_install(plan: InstallPlan, on_event: Callable[[InstallEvent], None] | None = None,
                cancel: threading.Event | None = None, log_path: str | None = None) -> str:
    """Run ``plan``; returns the Backend Python. Raises :class:`InstallError` / :class:`InstallCancelled`.

    A venv this run created is removed when it fails or is cancelled; an existing one (a reinstall)
    is left as it was where pip left it.
    """
    cancel = cancel or threading.Event()
    events = on_event or (lambda _e: None)
    created = not plan.venv_dir.exists()
    if log_path:
        os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(plan.describe() + "\n")
    runner = _Runner(plan, events, cancel, log_path)
    steps = plan.steps()
    try:
        for index in range(len(steps)):
            if cancel.is_set():
                raise InstallCancelled("the backend install was cancelled", "start it again when you are ready")
            runner.run(index, steps)
    except BaseException:
        if created:
            shutil.rmtree(plan.venv_dir, ignore_errors=True)
        raise
    version = runner.lines[-1] if runner.lines else ""
    events(InstallEvent(len(steps) - 1, len(steps), "Done", 1.0, f"Installed {version}", "done"))
    return plan.backend_python
