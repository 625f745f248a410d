"""Everything that can be checked is checked before a pass is rendered (``features.checks``).

Rendering is counted, not timed: the Generate feature's ``extract_passes`` is wrapped with a counter,
and every refused run must leave it at zero. The backend is the protocol fake (tests/addon_core), whose
``/v1/models`` and ``/v1/health`` each test sets.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from e2e_support import ADDON_MODULE, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "addon_core"))
from fake_backend import FakeBackend  # noqa: E402

bpy = pytest.importorskip("bpy")

UNITS = [{"type": "depth", "weight": 1.0, "start": 0.0, "end": 1.0}]
FLUX = {"id": "flux1-dev.safetensors", "kind": "base", "family": "flux", "source": "folder", "installed": True}


def addon_module(name: str):
    return importlib.import_module(f"{ADDON_MODULE}.{name}")


@pytest.fixture
def fake():
    server = FakeBackend()
    yield server
    server.stop()


@pytest.fixture
def renders(monkeypatch):
    """How many times the Generate feature rendered passes during the test."""
    generate = addon_module("features.generate")
    count = [0]
    real = generate.extract_passes

    def counting(*args, **kwargs):
        count[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(generate, "extract_passes", counting)
    return count


def test_an_8192_square_request_is_refused_before_rendering(api, scene, fake, renders):
    errors = addon_module("core.errors")
    with pytest.raises(errors.ScenecastError) as info:
        api.generate(scene, prompt="x", server=fake.url, model="builtin:tiny", width=8192, height=8192, units=UNITS)
    assert "8192" in info.value.message and info.value.fix
    assert renders[0] == 0 and not [r for r in fake.requests if r[0] == "POST"]


def test_a_flow_model_needs_multiples_of_16_before_rendering(api, scene, fake, renders):
    fake.models.append(FLUX)
    with pytest.raises(ValueError) as info:
        api.generate(scene, prompt="x", server=fake.url, model=FLUX["id"], width=520, height=512, units=UNITS)
    assert "multiple of 16" in info.value.message and info.value.fix == "set width to 528"
    assert renders[0] == 0
    # a size that suits it passes the same checks
    checks = addon_module("features.checks")
    assert checks.before_render({"server": fake.url, "model": FLUX["id"]}, 528, 512, UNITS) == []


def test_the_backends_own_size_limit_is_checked_before_rendering(api, scene, fake, renders):
    fake.health_extra["max_side"] = 1024
    with pytest.raises(ValueError, match="over the backend's limit of 1024"):
        api.generate(scene, prompt="x", server=fake.url, model="builtin:tiny", width=1536, height=1024, units=UNITS)
    assert renders[0] == 0


def test_a_model_that_is_not_installed_offline_is_refused_before_rendering(api, scene, fake, renders, monkeypatch):
    settings = addon_module("blender.settings")
    real = settings.preferences
    monkeypatch.setattr(settings, "preferences", lambda context=None: __import__("dataclasses").replace(
        real(context), offline=True))
    fake.models.append({"id": "dreamshaper_8.safetensors", "kind": "base", "family": "sd15", "installed": True})
    preflight = addon_module("core.preflight")
    with pytest.raises(preflight.ModelNotInstalled) as info:
        api.generate(scene, prompt="x", server=fake.url, model="realisticVision.safetensors", width=64, height=64,
                     units=UNITS)
    assert "dreamshaper_8.safetensors" in info.value.fix
    with pytest.raises(preflight.ModelNotInstalled, match="LoRA 'ink.safetensors'"):
        api.generate(scene, prompt="x", server=fake.url, model="builtin:tiny", width=64, height=64, units=UNITS,
                     loras=[{"name": "ink.safetensors", "weight": 0.8}])
    with pytest.raises(preflight.ModelNotInstalled, match="ControlNet 'missing_depth.safetensors'"):
        api.generate(scene, prompt="x", server=fake.url, model="builtin:tiny", width=64, height=64,
                     units=[{**UNITS[0], "model": "missing_depth.safetensors"}])
    assert renders[0] == 0


def test_an_unreachable_backend_is_found_before_rendering(api, scene, prefs, renders):
    prefs.auto_start = False
    url = f"127.0.0.1:{free_port()}"  # typed without http://
    errors = addon_module("core.errors")
    with pytest.raises(errors.BackendUnavailable) as info:
        api.generate(scene, prompt="x", server=url, model="builtin:tiny", width=64, height=64, units=UNITS)
    assert f"http://{url}" in info.value.message and "Start Local Backend Automatically" in info.value.fix
    assert renders[0] == 0


def test_the_generate_operator_reports_the_check_without_rendering(scene, fake, prefs, renders):
    fake.models.append(FLUX)
    prefs.server_url = fake.url.removeprefix("http://")
    scene.scenecast.prompt = "x"
    scene.scenecast.model = FLUX["id"]
    scene.scenecast.width, scene.scenecast.height = 520, 512
    with bpy.context.temp_override(scene=scene), pytest.raises(RuntimeError, match="multiple of 16"):
        bpy.ops.scenecast.generate()
    assert renders[0] == 0
