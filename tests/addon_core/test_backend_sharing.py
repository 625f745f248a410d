"""One backend shared by several Blender sessions (each a process running the add-on core): leases keep
it for whoever still needs it, the owner file lets the next session find it after a crash, and a busy
port makes the add-on start its backend on a free one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from addon.core import backend_lease, backend_owner, backend_process as bp

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.skipif(not os.environ.get("SCENECAST_BACKEND_PYTHON"),
                                reason="needs SCENECAST_BACKEND_PYTHON (make test sets it)")


def session(*args: str) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(HERE / "session_process.py"), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def read_line(proc: subprocess.Popen, prefix: str) -> str:
    """The session's next line starting with ``prefix`` (its other output is collected for the message)."""
    seen = []
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith(prefix):
            return line.strip()
        seen.append(line)
    raise AssertionError(f"the session ended without {prefix!r}:\n{''.join(seen)[-3000:]}")


def wait_gone(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while backend_owner.pid_alive(pid):
        assert time.monotonic() < deadline, f"pid {pid} still runs"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_session_that_started_the_backend_exits_and_the_others_job_finishes(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    a = session("start", url, str(tmp_path))
    try:
        _, backend_url, pid, *_ = read_line(a, "ready").split()
        assert backend_url == url
        b = session("job", url, str(tmp_path), "80", str(tmp_path / "out"))
        read_line(b, "running")
        a.stdin.write("exit\n")  # type: ignore[union-attr]
        a.stdin.flush()  # type: ignore[union-attr]
        assert a.wait(60) == 0  # A's exit path ran (atexit: stop_started) while B's job runs
        assert read_line(b, "done") == "done done 1"  # not killed under B
        assert b.wait(60) == 0
        wait_gone(int(pid))  # B was the last client and let go: the backend stopped itself
        assert backend_owner.find_left(str(tmp_path)) is None  # its owner file is stale now: removed
        assert backend_owner.read(str(tmp_path)) is None
    finally:
        for proc in (a, locals().get("b")):
            if proc is not None and proc.poll() is None:
                proc.kill()
        left = backend_owner.read(str(tmp_path))
        if left and backend_owner.pid_alive(left.pid):
            os.kill(left.pid, signal.SIGKILL)


def test_after_a_crash_the_next_session_finds_the_backend_and_can_stop_it_and_a_busy_port_is_avoided(
        tmp_path: Path) -> None:
    with socket.socket() as held:  # the URL's port is held by something that is not a backend
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        busy = held.getsockname()[1]
        url = f"http://127.0.0.1:{busy}"
        a = session("start", url, str(tmp_path))
        try:
            ready = read_line(a, "ready").split(maxsplit=3)
            backend_url, pid = ready[1], int(ready[2])
            assert backend_url != url and f"port {busy} is taken" in ready[3]
            a.kill()  # Blender crashes: no exit path runs
            a.wait(30)
            assert backend_owner.pid_alive(pid)
            left = backend_owner.find_left(str(tmp_path))
            assert left is not None and (left.pid, left.url) == (pid, backend_url) and not left.owner_alive
            # the next session (this process) uses it instead of starting another
            again = bp.ensure_backend(url, log_path=str(tmp_path / "backend.log"))
            assert again is not None and again.pid == pid and again.url == backend_url and "left running" in again.note
            assert backend_lease.held(backend_url) is not None
            # and can stop it
            assert backend_owner.stop_left(str(tmp_path)).pid == pid
            wait_gone(pid)
            assert backend_owner.find_left(str(tmp_path)) is None and backend_owner.read(str(tmp_path)) is None
        finally:
            if a.poll() is None:
                a.kill()
            backend_lease.release_all(shutdown_if_idle=False)
            with bp._lock:
                bp._started.clear()
            record = backend_owner.read(str(tmp_path))
            if record and backend_owner.pid_alive(record.pid):
                os.kill(record.pid, signal.SIGKILL)


def test_a_stale_owner_file_is_ignored_and_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    backend_owner.write(str(tmp_path), backend_owner.OwnerRecord(
        pid=dead.pid, url="http://127.0.0.1:9", port=9, owner_pid=dead.pid, log_path=str(tmp_path / "backend.log"),
        python=sys.executable, started=0.0))
    assert backend_owner.owner_path(str(tmp_path)).stat().st_mode & 0o077 == 0  # this user's only
    assert backend_owner.find_left(str(tmp_path)) is None
    assert not backend_owner.owner_path(str(tmp_path)).exists()
