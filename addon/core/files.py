"""The one way the add-on writes a file: readers see the old file or the whole new one, never half.

Results, frames and frame records all go through :func:`write_atomic`: the bytes go to a temporary
name in the same folder (same filesystem, so the final rename is atomic), are flushed and fsynced,
then ``os.replace`` puts them at the final path. The file gets the permissions any program's new file
gets, 0666 minus the umask (``tempfile.mkstemp`` would leave 0600, which hides results from a render
farm's other users and from the artist's other tools running as another user). On any failure the
temporary file is removed and an existing file at ``path`` is left as it was.

Standard library only (the add-on cannot import the backend's ``jobs/atomic.py``, which does the same).
"""

from __future__ import annotations

import os
import uuid

__all__ = ["write_atomic", "TEMP_SUFFIX"]

#: Temporary files end with this; a crash (power loss) may leave one behind, never a partial ``path``.
TEMP_SUFFIX = ".part"


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` exactly, atomically, with mode 0666 minus the umask.

    The folder must exist. Raises ``OSError`` (disk full, no permission) with ``path`` untouched.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)  # the kernel applies the umask, as for any new file
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable where the OS allows it (POSIX); best effort elsewhere."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
