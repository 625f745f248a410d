"""The owner file of a backend the add-on started: how the next Blender finds it after a crash.

When the add-on starts a backend it writes ``backend.json`` into its user data folder (the folder of
the backend log): the backend's pid, URL and port, and the pid of the Blender that started it. A
Blender that exits cleanly leaves the file while the backend lives on for other clients; one that
crashes leaves it too. The next Blender reads it (:func:`find_left`): when that pid still runs and the
server at that URL reports the same pid (``GET /v1/leases``), it uses that backend instead of
starting a second one, and the UI can stop it (:func:`stop_left`). A stale file (the process is gone,
or the pid now belongs to something else) is removed and ignored. Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import backend_lease

FILE_NAME = "backend.json"


@dataclass(frozen=True)
class OwnerRecord:
    pid: int  # the backend process
    url: str
    port: int
    owner_pid: int  # the Blender that started it
    log_path: str
    python: str
    started: float  # time.time()

    @property
    def owner_alive(self) -> bool:
        return pid_alive(self.owner_pid)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    except OSError:
        return False
    if Path(f"/proc/{pid}/stat").exists():  # a zombie (exited, not yet reaped by its parent) is gone
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True
    return True


def owner_path(state_dir: str) -> Path:
    return Path(state_dir) / FILE_NAME


def write(state_dir: str, record: OwnerRecord) -> None:
    """Atomically (a crash mid-write leaves the old file or none), readable by this user only."""
    os.makedirs(state_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".backend-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(record), fh, indent=1)
        os.replace(tmp, owner_path(state_dir))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read(state_dir: str) -> OwnerRecord | None:
    try:
        data = json.loads(owner_path(state_dir).read_text(encoding="utf-8"))
        return OwnerRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def remove(state_dir: str, pid: int | None = None) -> None:
    """Remove the file (only if it still names ``pid``, when given)."""
    record = read(state_dir)
    if pid is not None and record is not None and record.pid != pid:
        return
    try:
        owner_path(state_dir).unlink()
    except OSError:
        pass


def find_left(state_dir: str, token: str = "") -> OwnerRecord | None:
    """The backend an earlier Blender started and left running, if it still is that backend."""
    record = read(state_dir)
    if record is None:
        return None
    if pid_alive(record.pid) and backend_lease.server_pid(record.url, token) == record.pid:
        return record
    if not pid_alive(record.pid):
        remove(state_dir, record.pid)
    return None


def stop_left(state_dir: str, token: str = "", timeout: float = 15.0) -> OwnerRecord | None:
    """Stop the backend :func:`find_left` finds (SIGTERM, then SIGKILL after ``timeout``); returns it,
    or None when there was none. The pid is checked against the server first, so a reused pid is
    never signalled."""
    record = find_left(state_dir, token)
    if record is None:
        return None
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(record.pid):
        if time.monotonic() > deadline:
            os.kill(record.pid, getattr(signal, "SIGKILL", signal.SIGTERM))
            deadline = time.monotonic() + timeout
        time.sleep(0.05)
    remove(state_dir, record.pid)
    return record
