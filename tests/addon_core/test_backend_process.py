"""Finding and starting a local backend: resolution rules, and errors that point at the fix and the log."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from addon.core import backend_locate
from addon.core import backend_process as bp

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCENECAST_BACKEND_PYTHON", raising=False)
    monkeypatch.delenv("SCENECAST_BACKEND_DIR", raising=False)


def test_local_urls_are_recognised() -> None:
    assert bp.is_local_url("http://127.0.0.1:7437")
    assert bp.is_local_url("http://localhost:1")
    assert bp.is_local_url("http://[::1]:7437/")
    assert not bp.is_local_url("http://gpu-box.lan:7437")
    assert bp.url_port("http://127.0.0.1:7437") == 7437
    assert bp.url_port("https://example.org") == 443


def test_python_preference_wins_and_a_missing_one_names_the_preference(clean_env: None, tmp_path: Path) -> None:
    assert bp.resolve_python(sys.executable) == sys.executable
    with pytest.raises(bp.BackendProcessError) as info:
        bp.resolve_python(str(tmp_path / "nope" / "python"))
    assert "Backend Python" in info.value.fix


def test_python_from_env_then_backend_dir_venv(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCENECAST_BACKEND_PYTHON", sys.executable)
    assert bp.resolve_python("") == sys.executable
    monkeypatch.delenv("SCENECAST_BACKEND_PYTHON")
    venv_python = tmp_path / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(sys.executable)
    assert bp.resolve_python("", backend_dir=str(tmp_path)) == str(venv_python)


def test_no_python_anywhere_says_to_set_the_preference(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_locate, "_checkout_root", lambda: None)
    with pytest.raises(bp.BackendProcessError) as info:
        bp.resolve_python("")
    assert "Preferences" in info.value.fix and "SCENECAST_BACKEND_PYTHON" in info.value.fix


def test_backend_dir_is_the_folder_holding_the_venv(clean_env: None, tmp_path: Path) -> None:
    (tmp_path / "backend").mkdir()
    (tmp_path / "backend" / "__init__.py").write_text("")
    python = tmp_path / ".venv" / "bin" / "python"
    assert bp.resolve_backend_dir("", str(python)) == str(tmp_path)
    with pytest.raises(bp.BackendProcessError) as info:
        bp.resolve_backend_dir(str(tmp_path / "elsewhere"))
    assert "Backend Directory" in info.value.fix


def test_a_backend_that_dies_at_start_reports_the_log(tmp_path: Path) -> None:
    """A backend package that fails on import: the error carries its traceback's tail and the log path."""
    pkg = tmp_path / "backend"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(textwrap.dedent("""
        raise SystemExit("backend refuses: torch is missing in this environment")
    """))
    backend = bp.LocalBackend(python=sys.executable, port=_free_port(), backend_dir=str(tmp_path),
                              log_path=str(tmp_path / "logs" / "backend.log"))
    backend.start()
    with pytest.raises(bp.BackendProcessError) as info:
        backend.wait_healthy(timeout=30)
    assert "torch is missing" in info.value.message
    assert str(tmp_path / "logs" / "backend.log") in info.value.fix
    assert not backend.running()


def test_a_silent_backend_times_out_and_is_stopped(tmp_path: Path) -> None:
    pkg = tmp_path / "backend"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("import time\ntime.sleep(60)\n")
    backend = bp.LocalBackend(python=sys.executable, port=_free_port(), backend_dir=str(tmp_path),
                              log_path=str(tmp_path / "backend.log"))
    backend.start()
    with pytest.raises(bp.BackendProcessError) as info:
        backend.wait_healthy(timeout=1.5)
    assert "did not answer" in info.value.message
    assert not backend.running()


@pytest.mark.skipif(not os.environ.get("SCENECAST_BACKEND_PYTHON"), reason="needs SCENECAST_BACKEND_PYTHON (make test sets it)")
def test_real_backend_starts_answers_and_stops(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    # Two callers at once (the UI's worker and a script, say) get one process between them.
    got: list = []
    threads = [
        threading.Thread(target=lambda: got.append(bp.ensure_backend(url, log_path=str(tmp_path / "backend.log"))))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    backend = got[0]
    try:
        assert len(got) == 2 and got[1] is backend
        assert backend is not None and backend.running()
        health = bp.probe_health(url)
        assert health is not None and health["protocol"] == 1
        assert bp.started_backend(url) is backend
        assert bp.ensure_backend(url) is backend  # a second call does not start a second process
    finally:
        bp.stop_started()
    assert not backend.running()
    assert bp.probe_health(url, timeout=0.5) is None
    # The backend writes (and rotates) backend.log itself; the process's own output goes beside it.
    assert "--log-file" in backend.command()
    log = (tmp_path / "backend.log").read_text()
    assert "listening on" in log and " INFO " in log
    console = (tmp_path / "backend-console.log").read_text()
    assert "scenecast starts" in console and " INFO " not in console
