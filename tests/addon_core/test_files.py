"""The add-on's one atomic writer: 0666 minus the umask (not mkstemp's 0600), no half-written file."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from addon.core import files, frame_sequence, remote_job
from addon.core.files import write_atomic


@pytest.fixture
def umask():
    """Set a umask for the test (the process-wide one; pytest runs tests in one thread)."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_(mask: int) -> None:
        os.umask(mask)

    yield set_
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600), (0o000, 0o666)])
def test_written_files_get_0666_minus_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    path = tmp_path / "result.png"
    write_atomic(path, b"new bytes")
    assert path.read_bytes() == b"new bytes" and mode(path) == expected
    write_atomic(path, b"replaced")  # replacing an existing file: same rule, whole new content
    assert path.read_bytes() == b"replaced" and mode(path) == expected


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_results_and_frame_records_use_the_same_writer(tmp_path, umask):
    umask(0o022)
    record = frame_sequence.new_record({"prompt": "x"}, 1, 2)
    frame_sequence.save_record(str(tmp_path / "frames.json"), record)
    assert mode(tmp_path / "frames.json") == 0o644
    assert json.loads((tmp_path / "frames.json").read_text())["flicker_mean"] is None
    assert remote_job.write_atomic is files.write_atomic  # results (run_job) and frames (frame_run) use it


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "frame_0001.png"
    path.write_bytes(b"old frame")
    real_fsync = os.fsync

    def failing_fsync(fd):
        real_fsync(fd)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, np.arange(100_000, dtype=np.uint8).tobytes())
    assert path.read_bytes() == b"old frame"
    assert sorted(os.listdir(tmp_path)) == ["frame_0001.png"]


def test_an_interrupted_write_leaves_no_file_where_there_was_none(tmp_path, monkeypatch):
    def interrupted(src, dst):
        raise KeyboardInterrupt  # Ctrl-C in `blender -b` between write and rename

    monkeypatch.setattr(files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "out.png", b"data")
    assert os.listdir(tmp_path) == []


def test_the_folder_must_exist_and_the_error_says_which(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        write_atomic(tmp_path / "missing" / "out.png", b"data")
