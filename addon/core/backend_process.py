"""Find, start and stop a local Scenecast backend process.

The add-on never runs ML inside Blender: it talks to a backend server. When the backend URL points at
this machine and nothing answers there, the add-on can start one itself ("start local backend" in the
preferences). That needs two things the add-on cannot guess for sure:

- the backend's **Python executable** — the interpreter of the backend's own virtual environment
  (torch, diffusers, ...). Resolved from the preference, else ``$SCENECAST_BACKEND_PYTHON``, else
  ``<backend dir>/.venv/bin/python``, else a ``.venv`` of a Scenecast checkout that contains this file
  (running the add-on from a git checkout).
- the **backend directory** — the folder that contains the ``backend`` package, used as the working
  directory and put on ``PYTHONPATH`` so ``python -m backend`` imports. Resolved from the preference,
  else ``$SCENECAST_BACKEND_DIR``, else the folder that holds the Python's virtual environment when it
  contains ``backend/`` (``/x/.venv/bin/python`` → ``/x``). With none, the backend must be installed
  into that Python's environment.

The process runs ``python -m backend serve --host 127.0.0.1 --port P``, with its output appended to a
log file; health is polled on ``/v1/health`` until it answers or a timeout passes, and errors point at
the log. A backend is stopped only if this module started it — on :func:`stop_started` (the add-on's
``unregister``) or at interpreter exit — never one that was already running.

Standard library only; no bpy (the add-on's preferences pass their values in).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BackendProcessError

__all__ = ["BackendProcessError", "DEFAULT_URL", "LocalBackend", "ensure_backend", "stop_started"]

DEFAULT_URL = "http://127.0.0.1:7437"
#: Seconds to wait for a freshly started backend to answer /v1/health (it imports torch: slow).
DEFAULT_START_TIMEOUT = 120.0
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def is_local_url(url: str) -> bool:
    """True when ``url`` names this machine (loopback), so a backend for it may be started here."""
    host = urllib.parse.urlsplit(url).hostname or ""
    return host.lower() in _LOCAL_HOSTS


def url_port(url: str) -> int:
    """The TCP port of ``url`` (80/443 when it names none)."""
    parts = urllib.parse.urlsplit(url)
    if parts.port is not None:
        return parts.port
    return 443 if parts.scheme == "https" else 80


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _checkout_root() -> Path | None:
    """The Scenecast checkout this file lives in (``<root>/addon/core/``), if it is one."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "backend" / "__init__.py").is_file() else None


def resolve_python(preference: str = "", backend_dir: str = "") -> str:
    """The backend's Python executable: preference, env, ``<backend dir>/.venv``, checkout ``.venv``.

    Raises :class:`BackendProcessError` naming the preference to set when none exists.
    """
    candidates: list[tuple[str, str]] = []
    if preference:
        candidates.append((preference, "the add-on preference"))
    env = os.environ.get("SCENECAST_BACKEND_PYTHON", "")
    if env:
        candidates.append((env, "$SCENECAST_BACKEND_PYTHON"))
    for base in (backend_dir, os.environ.get("SCENECAST_BACKEND_DIR", "")):
        if base:
            candidates.append((str(_venv_python(Path(base) / ".venv")), "the backend directory's .venv"))
    root = _checkout_root()
    if root is not None:
        candidates.append((str(_venv_python(root / ".venv")), "the Scenecast checkout's .venv"))
    for path, source in candidates:
        p = Path(os.path.expanduser(path))
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
        if source in ("the add-on preference", "$SCENECAST_BACKEND_PYTHON"):
            raise BackendProcessError(
                f"the backend Python set in {source} does not exist or cannot run: {path}",
                "set Preferences › Add-ons › Scenecast › Backend Python to the python of the backend's"
                " virtual environment (e.g. <scenecast checkout>/.venv/bin/python)",
            )
    raise BackendProcessError(
        "no backend Python executable is known, so no local backend can be started",
        "set Preferences › Add-ons › Scenecast › Backend Python to the python of the backend's virtual"
        " environment (e.g. <scenecast checkout>/.venv/bin/python), or set SCENECAST_BACKEND_PYTHON",
    )


def resolve_backend_dir(preference: str = "", python: str = "") -> str | None:
    """The folder holding the ``backend`` package, or None when it must be installed in the venv."""
    for candidate in (preference, os.environ.get("SCENECAST_BACKEND_DIR", "")):
        if candidate:
            path = Path(os.path.expanduser(candidate))
            if not (path / "backend" / "__init__.py").is_file():
                raise BackendProcessError(
                    f"the backend directory {path} has no backend/ package in it",
                    "set Preferences › Add-ons › Scenecast › Backend Directory to the Scenecast checkout"
                    " (the folder that contains backend/), or leave it empty",
                )
            return str(path)
    if python:
        # /x/.venv/bin/python -> /x ; do not resolve symlinks: a venv's python links to the system one.
        venv_root = Path(os.path.abspath(os.path.expanduser(python))).parent.parent.parent
        if (venv_root / "backend" / "__init__.py").is_file():
            return str(venv_root)
    root = _checkout_root()
    return str(root) if root is not None else None


def default_log_path() -> str:
    """Where a started backend's output goes: the user cache (``$XDG_CACHE_HOME``) or the temp folder."""
    base = os.environ.get("XDG_CACHE_HOME") or (
        os.path.join(os.path.expanduser("~"), ".cache") if os.name != "nt" else tempfile.gettempdir()
    )
    return os.path.join(base, "scenecast", "backend.log")


def probe_health(url: str, token: str = "", timeout: float = 2.0) -> dict | None:
    """GET ``/v1/health``: its JSON when the server answers 200, None when nothing answers.

    An answer that is not Scenecast's (not JSON, or an HTTP error) is also None: the caller's client
    then reports it properly. This exists so that waiting for a starting server needs no client.
    """
    request = urllib.request.Request(url.rstrip("/") + "/v1/health")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = json.loads(response.read().decode("utf-8"))
            return data if isinstance(data, dict) else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _log_tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class LocalBackend:
    """One backend process this add-on started (or is about to start) on this machine."""

    python: str
    port: int
    backend_dir: str | None = None
    log_path: str = field(default_factory=default_log_path)
    token: str = ""
    host: str = "127.0.0.1"
    offline: bool = False  # Blender's "Allow Online Access" is off: the backend must not reach the hub
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def console_path(self) -> str:
        """The process's own stdout/stderr: warnings, errors and what happens before logging starts.
        Truncated at each start; the log proper (``log_path``) is written and rotated by the backend."""
        return os.path.splitext(self.log_path)[0] + "-console.log"

    def command(self) -> list[str]:
        return [self.python, "-m", "backend", "serve", "--host", self.host, "--port", str(self.port),
                "--log-file", self.log_path]

    def start(self) -> None:
        """Spawn the process (does not wait for it; see :meth:`wait_healthy`)."""
        env = dict(os.environ)
        if self.backend_dir:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (self.backend_dir, env.get("PYTHONPATH", "")) if p)
        if self.token:
            env["SCENECAST_TOKEN"] = self.token  # not on the command line, where `ps` shows it
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.offline:
            env["HF_HUB_OFFLINE"] = "1"
        os.makedirs(os.path.dirname(self.log_path) or ".", exist_ok=True)
        with open(self.console_path, "wb") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} scenecast starts: {' '.join(self.command())}"
                      f" (cwd {self.backend_dir or os.getcwd()})\n".encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    self.command(), cwd=self.backend_dir or None, env=env, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=os.name != "nt",  # Ctrl-C in Blender's terminal does not hit it
                )
            except OSError as exc:
                raise BackendProcessError(
                    f"could not run the backend Python {self.python}: {exc}",
                    "set Preferences › Add-ons › Scenecast › Backend Python to a working python",
                    self.log_path,
                ) from exc

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_healthy(self, timeout: float = DEFAULT_START_TIMEOUT, cancel: threading.Event | None = None) -> dict:
        """Poll /v1/health until it answers; raise with the log's tail if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            health = probe_health(self.url, self.token, timeout=1.0)
            if health is not None:
                return health
            if self.process is not None and self.process.poll() is not None:
                code = self.process.returncode
                raise BackendProcessError(
                    f"the local backend exited (code {code}) before it answered:\n"
                    f"{_log_tail(self.console_path) or _log_tail(self.log_path)}",
                    f"read the backend log at {self.log_path} (and {self.console_path});"
                    " check Backend Python and Backend Directory"
                    " in the add-on preferences, or start the backend yourself (python -m backend serve)",
                    self.log_path,
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BackendProcessError(
                    f"the local backend did not answer on {self.url} within {timeout:.0f} s",
                    f"read the backend log at {self.log_path}; a first start can be slow, try again",
                    self.log_path,
                )
            if cancel is not None and cancel.is_set():
                self.stop()
                raise BackendProcessError("starting the local backend was cancelled", "start it again", self.log_path)
            time.sleep(0.2)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process (then kill it if it lingers). Only ever called on one we started."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


_started: dict[str, LocalBackend] = {}
_lock = threading.Lock()


def started_backend(url: str) -> LocalBackend | None:
    """The backend this add-on started for ``url``'s port, if it is still running."""
    with _lock:
        backend = _started.get(_key(url))
    return backend if backend is not None and backend.running() else None


def _key(url: str) -> str:
    return f"{urllib.parse.urlsplit(url).hostname}:{url_port(url)}"


def ensure_backend(
    url: str,
    *,
    python: str = "",
    backend_dir: str = "",
    token: str = "",
    log_path: str = "",
    timeout: float = DEFAULT_START_TIMEOUT,
    cancel: threading.Event | None = None,
    offline: bool = False,
) -> LocalBackend | None:
    """Make sure something answers at the local ``url``; start a backend if nothing does.

    Returns the :class:`LocalBackend` when this call (or an earlier one) started it, None when a server
    was already answering. Thread-safe: two callers do not start two processes.
    """
    if not is_local_url(url):
        raise BackendProcessError(
            f"{url} is not on this machine, so no backend can be started for it",
            "start the backend on that machine, or set the backend URL to http://127.0.0.1:<port>",
        )
    with _lock:
        backend = _started.get(_key(url))
        if probe_health(url, token) is not None:
            return backend if backend is not None and backend.running() else None
        if backend is None or not backend.running():  # else another caller started it: wait for it too
            exe = resolve_python(python, backend_dir)
            backend = LocalBackend(
                python=exe,
                port=url_port(url),
                backend_dir=resolve_backend_dir(backend_dir, exe),
                log_path=log_path or default_log_path(),
                token=token,
                offline=offline,
            )
            backend.start()
            _started[_key(url)] = backend
    backend.wait_healthy(timeout, cancel)
    return backend


def stop_started() -> None:
    """Stop every backend this module started (add-on unregister, interpreter exit)."""
    with _lock:
        backends = list(_started.values())
        _started.clear()
    for backend in backends:
        backend.stop()


def last_log_path() -> str:
    """The log of the most recently started backend, else where the next one will log."""
    with _lock:
        logs = [b.log_path for b in _started.values()]
    return logs[-1] if logs else default_log_path()


atexit.register(stop_started)
