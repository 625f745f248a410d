"""Where a local backend is: its Python interpreter, its folder, the log's default place, and the URL's
host and port (typed with or without ``http://``), plus whether a port is free. Resolution order is
described in ``core.backend_process``, which starts the process from these answers. Standard library
only; no bpy."""

from __future__ import annotations

import os
import tempfile
import urllib.parse
from pathlib import Path

from .errors import BackendProcessError

DEFAULT_URL = "http://127.0.0.1:7437"


def normalize_url(url: str) -> str:
    """``url`` with ``http://`` in front when typed without a scheme ("127.0.0.1:7437", "localhost:7437"),
    surrounding blanks and trailing slashes removed; empty: :data:`DEFAULT_URL`."""
    url = url.strip()
    if not url:
        return DEFAULT_URL
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/")


_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def is_local_url(url: str) -> bool:
    """True when ``url`` names this machine (loopback), so a backend for it may be started here."""
    host = urllib.parse.urlsplit(normalize_url(url)).hostname or ""
    return host.lower() in _LOCAL_HOSTS


def url_port(url: str) -> int:
    """The TCP port of ``url`` (80/443 when it names none)."""
    parts = urllib.parse.urlsplit(normalize_url(url))
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


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound on ``host`` now (nothing listens there)."""
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(host: str = "127.0.0.1") -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
