"""What is checked before passes are rendered (core.preflight), the default size from the render
resolution, backend URLs typed without a scheme, and a URL that answers but is not a Scenecast backend."""

import http.server
import threading

import pytest

from addon.core import backend_process, preflight
from addon.core.client import BackendClient, ProtocolMismatch
from addon.core.errors import ScenecastError
from addon.core.jobspec import SpecError

MODELS = [
    {"id": "builtin:tiny", "kind": "base", "family": "sd15", "installed": True},
    {"id": "dreamshaper_8.safetensors", "kind": "base", "family": "sd15", "installed": True},
    {"id": "control_v11f1p_sd15_depth.safetensors", "kind": "controlnet", "family": "sd15", "installed": True},
    {"id": "black-forest-labs/FLUX.1-dev", "kind": "base", "family": "flux", "installed": False},
]


@pytest.mark.parametrize("w, h, words", [
    (0, 512, "at least 64"),
    (512, 0, "at least 64"),
    (8192, 8192, "over the backend's limit of 2048"),
    (516, 512, "not a multiple of 8"),
    (512.5, 512, "whole number"),
])
def test_bad_sizes_are_refused_with_a_fix(w, h, words):
    with pytest.raises(SpecError) as err:
        preflight.check_size(w, h)
    assert words in err.value.message and err.value.fix.startswith("set ")


def test_flow_families_need_multiples_of_16():
    assert preflight.check_size(520, 512) == (520, 512)  # fine for SD 1.5
    with pytest.raises(SpecError) as err:
        preflight.check_size(520, 512, family="flux")
    assert "multiple of 16" in err.value.message and err.value.fix == "set width to 528"


def test_the_backends_own_limit_applies():
    with pytest.raises(SpecError) as err:
        preflight.check_size(1536, 1024, max_side=1024)
    assert "1024" in err.value.message and "1024 or less" in err.value.fix


@pytest.mark.parametrize("render, family, expected", [
    ((1920, 1080), "sd15", (1024, 576)),  # 16:9 kept, longest side 1024 for SD 1.5
    ((1920, 1080), "sdxl", (1536, 864)),
    ((1920, 1080), "flux", (1536, 864)),  # 864 = 54 × 16
    ((1000, 1000), "flux", (1008, 1008)),  # under the cap: rounded to 16
    ((640, 480), "sd15", (640, 480)),  # small renders are not enlarged
    ((4000, 100), "sd15", (1024, 64)),  # never below the minimum side
])
def test_default_size_follows_the_render_aspect(render, family, expected):
    w, h = preflight.fit_size(*render, family=family)
    assert (w, h) == expected
    assert preflight.check_size(w, h, family=family) == (w, h)


def test_models_missing_offline_are_refused_naming_installed_ones():
    with pytest.raises(preflight.ModelNotInstalled) as err:
        preflight.check_installed(MODELS, "realistic.safetensors", [], offline=True)
    assert "dreamshaper_8.safetensors" in err.value.fix and "Allow Online Access" in err.value.fix
    with pytest.raises(preflight.ModelNotInstalled):
        preflight.check_installed(MODELS, "dreamshaper_8.safetensors", ["missing_cn.safetensors"], offline=True)
    with pytest.raises(preflight.ModelNotInstalled):  # listed, but not downloaded
        preflight.check_installed(MODELS, "black-forest-labs/FLUX.1-dev", [], offline=True)


def test_installed_models_pass_and_online_downloads_are_noted():
    assert preflight.check_installed(MODELS, "dreamshaper_8.safetensors",
                                     ["control_v11f1p_sd15_depth.safetensors"], offline=True) == []
    assert preflight.check_installed(MODELS, "builtin:anything", [], offline=True) == []
    notes = preflight.check_installed(MODELS, "someone/new-model", [], offline=False)
    assert len(notes) == 1 and "downloads it first" in notes[0]


@pytest.mark.parametrize("typed, url, local, port", [
    ("127.0.0.1:7437", "http://127.0.0.1:7437", True, 7437),
    ("localhost:7440/", "http://localhost:7440", True, 7440),
    ("  http://10.0.0.5:7437 ", "http://10.0.0.5:7437", False, 7437),
    ("", backend_process.DEFAULT_URL, True, 7437),
])
def test_a_url_without_a_scheme_is_the_same_backend(typed, url, local, port):
    assert backend_process.normalize_url(typed) == url
    assert backend_process.is_local_url(typed) is local
    assert backend_process.url_port(typed) == port


class _WebServer(http.server.BaseHTTPRequestHandler):
    """A web server that is not a Scenecast backend: HTML for everything, 404 or 200."""

    status = 404

    def do_GET(self):  # noqa: N802
        body = b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status", [404, 200])
def test_a_web_server_is_named_as_not_a_scenecast_backend(status):
    handler = type("Handler", (_WebServer,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with pytest.raises(ProtocolMismatch) as err:
            BackendClient(f"127.0.0.1:{port}", timeout=5).health()  # typed without http://
    finally:
        server.shutdown()
        server.server_close()
    assert isinstance(err.value, ScenecastError)
    assert "not a Scenecast backend" in err.value.message and "<html" not in str(err.value)
    assert "Backend URL" in err.value.fix


def test_a_lora_missing_offline_is_refused_naming_installed_loras():
    models = MODELS + [{"id": "watercolor.safetensors", "kind": "lora", "family": "sd15", "installed": True}]
    with pytest.raises(preflight.ModelNotInstalled) as err:
        preflight.check_installed(models, "builtin:tiny", [], offline=True, loras=["ink.safetensors"])
    assert "LoRA 'ink.safetensors'" in err.value.message and "watercolor.safetensors" in err.value.fix
    assert preflight.check_installed(models, "builtin:tiny", [], offline=True, loras=["watercolor.safetensors"]) == []


@pytest.mark.parametrize("path", ["/models/ink.safetensors", "~/loras/ink.safetensors", r"C:\models\ink.safetensors",
                                  "loras/ink.safetensors", "./my-model"])
def test_paths_are_left_to_the_backend(path):
    assert preflight.check_installed(MODELS, "builtin:tiny", [path], offline=True, loras=[path]) == []
    with pytest.raises(preflight.ModelNotInstalled):  # a hub id is a name, not a path
        preflight.check_installed(MODELS, "someone/lora", [], offline=True)
