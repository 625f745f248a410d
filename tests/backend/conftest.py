"""Fixtures for the model and pipeline tests (helpers live in _tiny.py).

Torch runs single-threaded here: the dev box has 2 cores shared by several processes, and OpenMP
spinning under contention makes the tiny models ~50x slower with 2 threads than with 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from _tiny import RecordingProgress, save_tiny_controlnet, save_tiny_diffusers  # noqa: E402


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_diffusers(tmp_path_factory.mktemp("tiny-diffusers"))


@pytest.fixture(scope="session")
def tiny_cn_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_controlnet(tmp_path_factory.mktemp("tiny-controlnet"))


@pytest.fixture(scope="session")
def manager():  # noqa: ANN201
    from backend.models import ModelManager

    return ModelManager(device="cpu")


@pytest.fixture(autouse=True)
def _release_step_gates():  # noqa: ANN202
    """A test that fails while the shared server holds one of its jobs at a step gate holds up no other test."""
    yield
    from _server import release_shared_gates

    release_shared_gates()


@pytest.fixture
def progress() -> RecordingProgress:
    return RecordingProgress()
