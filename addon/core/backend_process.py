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

The process runs ``python -m backend serve --host 127.0.0.1 --port P --idle-exit S``, with its output
appended to a log file; health is polled on ``/v1/health`` until it answers or a timeout passes, and
errors point at the log. When the URL's port is taken by something that is not a healthy backend, a
free port is picked instead (the returned backend's ``url`` says which). Models Folders go to it as
``$SCENECAST_MODELS_FOLDERS``.

Sharing (several Blenders, one backend): the add-on holds a lease on any local backend it uses
(backend_lease.py). On exit (:func:`stop_started`: the add-on's ``unregister`` or interpreter exit) it
releases its leases asking the backend to stop only if no other client holds one and no job runs; a
backend someone else still uses keeps running. A backend it starts is recorded in an owner file beside
the log (backend_owner.py), so the next Blender — after a crash too — finds and uses it (or stops it)
instead of starting a second one.

Standard library only; no bpy (the add-on's preferences pass their values in).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from . import backend_lease, backend_owner
from .backend_locate import (  # noqa: F401  (part of this module's API: callers use backend_process.X)
    DEFAULT_URL,
    default_log_path,
    is_local_url,
    normalize_url,
    pick_free_port,
    port_free,
    resolve_backend_dir,
    resolve_python,
    url_port,
)
from .errors import BackendProcessError

__all__ = ["BackendProcessError", "DEFAULT_URL", "LocalBackend", "ensure_backend", "stop_started"]

#: Seconds to wait for a freshly started backend to answer /v1/health (it imports torch: slow).
DEFAULT_START_TIMEOUT = 120.0
#: Seconds a backend the add-on started waits with no client lease and no job before it stops itself.
DEFAULT_IDLE_EXIT = 300.0


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
    models_folders: str = ""  # os.pathsep-separated ComfyUI / A1111 folders (the Models Folders preference)
    idle_exit: float | None = DEFAULT_IDLE_EXIT
    process: subprocess.Popen | None = None
    pid: int | None = None  # set for a backend found through its owner file (not our child process)
    note: str = ""  # what the user should be told about how it was started (another port, adopted)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def console_path(self) -> str:
        """The process's own stdout/stderr: warnings, errors and what happens before logging starts.
        Truncated at each start; the log proper (``log_path``) is written and rotated by the backend."""
        return os.path.splitext(self.log_path)[0] + "-console.log"

    @property
    def state_dir(self) -> str:
        """Where its owner file lives: the folder of its log (the add-on's user data folder)."""
        return os.path.dirname(os.path.abspath(self.log_path))

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "backend", "serve", "--host", self.host, "--port", str(self.port),
               "--log-file", self.log_path]
        return cmd + (["--idle-exit", f"{self.idle_exit:g}"] if self.idle_exit else [])

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
        if self.models_folders.strip():
            env["SCENECAST_MODELS_FOLDERS"] = os.pathsep.join(
                p for p in (self.models_folders.strip(), env.get("SCENECAST_MODELS_FOLDERS", "")) if p)
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
        self.pid = self.process.pid
        try:
            backend_owner.write(self.state_dir, backend_owner.OwnerRecord(
                pid=self.process.pid, url=self.url, port=self.port, owner_pid=os.getpid(),
                log_path=self.log_path, python=self.python, started=time.time()))
        except OSError:
            pass  # without the file a crash leaves it to its --idle-exit; not worth failing the start

    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return self.pid is not None and backend_owner.pid_alive(self.pid)

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the process to end by itself; True when it did."""
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

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
        """Terminate the process (then kill it if it lingers). Only ever called on one we started, or one
        the owner file led us to (its pid checked against the server)."""
        proc = self.process
        if proc is None:
            if self.pid is not None and self.running():
                backend_owner.stop_left(self.state_dir, self.token, timeout)
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        backend_owner.remove(self.state_dir, proc.pid)


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
    models_folders: str = "",
    idle_exit: float | None = DEFAULT_IDLE_EXIT,
) -> LocalBackend | None:
    """Make sure a backend answers for the local ``url``; start one if none does. Holds a lease on it.

    In order: the backend this process started for ``url``; a server answering at ``url`` (None is
    returned); a backend an earlier Blender left (its owner file beside ``log_path``); else a new one,
    on ``url``'s port when it is free, else on a free port. Returns the :class:`LocalBackend` (its
    ``url`` is where it listens; ``note`` says when that is not ``url``). Thread-safe: two callers do
    not start two processes.
    """
    if not is_local_url(url):
        raise BackendProcessError(
            f"{url} is not on this machine, so no backend can be started for it",
            "start the backend on that machine, or set the backend URL to http://127.0.0.1:<port>",
        )
    log_path = log_path or default_log_path()
    with _lock:
        backend = _started.get(_key(url))
        if backend is not None and backend.running() and probe_health(backend.url, token) is not None:
            backend_lease.hold(backend.url, token)
            return backend
        if probe_health(url, token) is not None:
            backend_lease.hold(url, token)
            return backend if backend is not None and backend.running() else None
        left = backend_owner.find_left(os.path.dirname(os.path.abspath(log_path)), token)
        if left is not None and (left.owner_pid != os.getpid() or left.port == url_port(url)):
            backend = LocalBackend(python=left.python, port=left.port, log_path=left.log_path, token=token,
                                   pid=left.pid, note=f"using the backend left running on {left.url}"
                                   f" (pid {left.pid}, started by Blender pid {left.owner_pid})")
            _started[_key(url)] = backend
            backend_lease.hold(backend.url, token)
            return backend
        if backend is None or not backend.running():  # else another caller started it: wait for it too
            exe = resolve_python(python, backend_dir)
            port, note = url_port(url), ""
            if not port_free(port):
                port = pick_free_port()
                note = f"port {url_port(url)} is taken by something that is not a Scenecast backend: started on {port}"
            backend = LocalBackend(
                python=exe,
                port=port,
                backend_dir=resolve_backend_dir(backend_dir, exe),
                log_path=log_path,
                token=token,
                offline=offline,
                models_folders=models_folders,
                idle_exit=idle_exit,
                note=note,
            )
            backend.start()
            _started[_key(url)] = backend
    backend.wait_healthy(timeout, cancel)
    backend_lease.hold(backend.url, token)
    return backend


def stop_started(timeout: float = 15.0) -> None:
    """On exit (add-on unregister, interpreter exit): release this Blender's leases, asking each backend
    to stop if nothing else needs it. A backend this module started is waited for when it stops, and
    terminated when it no longer answers; one another client still holds keeps running for it."""
    with _lock:
        backends = list(_started.values())
        _started.clear()
    answers = backend_lease.release_all(shutdown_if_idle=True)
    for backend in backends:
        answer = answers.get(backend.url)
        if backend.process is not None and not backend.idle_exit:
            backend.stop()  # started without --idle-exit: no one else can rely on it outliving us
            continue
        if not backend.running() or answer is False:
            continue  # gone, or still needed by another client (its owner file stays for the next Blender)
        if answer is True and backend.wait_exit(timeout):
            backend_owner.remove(backend.state_dir, backend.pid)
            continue
        backend.stop()


def last_log_path() -> str:
    """The log of the most recently started backend, else where the next one will log."""
    with _lock:
        logs = [b.log_path for b in _started.values()]
    return logs[-1] if logs else default_log_path()


atexit.register(stop_started)
