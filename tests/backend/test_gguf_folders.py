"""GGUF transformers in models folders (backend/models/folders.py, gguf_header.py): a ComfyUI and a Forge
layout built here with tiny FLUX.1 / Qwen-Image transformers written as real GGUF files (the ``gguf``
package, Q8_0 and F16 as city96's files), a GGUF language model and a truncated file; listed with family,
kind and quantization from their headers, run by file name through the server (pixels equal to the same
file by path), and refused at submit when their companion is not there offline."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gguf = pytest.importorskip("gguf")

from _gguf import write_gguf  # noqa: E402
from _server import start_server  # noqa: E402
from backend.models import ModelManager, ModelNotFound, UnsupportedModel  # noqa: E402
from backend.models.builtins import BASES  # noqa: E402
from backend.models.defaults import FLUX_UNION, default_controlnet  # noqa: E402
from backend.models.gguf_header import GGML_TYPES, GgufHeaderError, quantization, read_gguf_tensors  # noqa: E402


def _llm_gguf(path: Path) -> Path:
    """A GGUF language model (llama key names, a vocabulary array in its metadata): not ours."""
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_token_list(["<s>", "</s>", "a", "b"])
    writer.add_tensor("token_embd.weight", np.zeros((8, 32), np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((32, 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf-folders")
    comfy = root / "ComfyUI" / "models"
    for sub in ("unet", "diffusion_models/qwen", "checkpoints"):
        (comfy / sub).mkdir(parents=True)
    write_gguf(BASES["builtin:tiny-flux"]().transformer, comfy / "unet" / "tiny-flux-Q8_0.gguf")
    write_gguf(BASES["builtin:tiny-qwen"]().transformer, comfy / "diffusion_models" / "qwen" / "tiny-qwen-F16.gguf",
               "F16")
    _llm_gguf(comfy / "unet" / "llama-tiny.gguf")
    whole = (comfy / "unet" / "tiny-flux-Q8_0.gguf").read_bytes()
    (comfy / "checkpoints" / "cut-short.gguf").write_bytes(whole[:200])  # a download that stopped early
    forge = root / "forge" / "models" / "Stable-diffusion"
    forge.mkdir(parents=True)
    write_gguf(BASES["builtin:tiny-flux-schnell"]().transformer, forge / "schnell-tiny.gguf")
    return {"comfy": root / "ComfyUI", "forge": root / "forge", "flux_file": comfy / "unet" / "tiny-flux-Q8_0.gguf"}


@pytest.fixture
def with_folders(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("SCENECAST_MODELS_FOLDERS", os.pathsep.join([str(folders["comfy"]), str(folders["forge"])]))
    return folders


def _listed(manager: ModelManager) -> dict[str, dict]:
    return {m["id"]: m for m in manager.list_models() if m.get("source") == "folder"}


def test_the_header_reader_agrees_with_the_gguf_package(folders: dict[str, Path]) -> None:
    for path in (folders["flux_file"], folders["comfy"] / "models" / "unet" / "llama-tiny.gguf"):
        ours = read_gguf_tensors(path)
        theirs = gguf.GGUFReader(str(path), "r").tensors
        assert {t.name: (tuple(int(d) for d in reversed(t.shape.tolist())), t.tensor_type.name) for t in theirs} \
            == {name: (t.shape, t.type_name) for name, t in ours.items()}
    assert quantization(read_gguf_tensors(folders["flux_file"])) == "Q8_0"
    assert {t.value: t.name for t in gguf.GGMLQuantizationType if t.value in GGML_TYPES} == GGML_TYPES
    with pytest.raises(GgufHeaderError, match="truncated"):
        read_gguf_tensors(folders["comfy"] / "models" / "checkpoints" / "cut-short.gguf")


def test_gguf_files_are_listed_with_family_kind_and_quantization(with_folders: dict[str, Path]) -> None:
    listed = _listed(ModelManager(device="cpu", gguf_companions={"flux": "builtin:tiny-flux"}))
    got = {k: (v["kind"], v["family"], v["layout"], v["format"], v.get("quantization"), v["runnable"])
           for k, v in listed.items()}
    assert got == {
        "tiny-flux-Q8_0": ("base", "flux", "comfyui", "gguf", "Q8_0", True),
        "tiny-qwen-F16": ("base", "qwen", "comfyui", "gguf", "F16", True),  # diffusion_models/, in a subfolder
        "schnell-tiny": ("base", "flux-schnell", "a1111", "gguf", "Q8_0", True),  # Forge keeps them here
        "llama-tiny": ("unknown", "unknown", "comfyui", "gguf", "F32", False),
    }  # the truncated file is skipped (a warning in the log), as unreadable safetensors are
    assert "not a diffusion transformer" in listed["llama-tiny"]["reason"]
    assert "reason" not in listed["tiny-flux-Q8_0"]
    # where each gets its VAE and text encoders
    assert listed["tiny-flux-Q8_0"]["companion"] == "builtin:tiny-flux"
    assert listed["tiny-qwen-F16"]["companion"] == "Qwen/Qwen-Image"


def test_without_the_gguf_package_they_are_listed_as_not_runnable_with_the_fix(
        with_folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` fails, as where it is not installed
    manager = ModelManager(device="cpu", gguf_companions={"flux": "builtin:tiny-flux"})
    entry = _listed(manager)["tiny-flux-Q8_0"]
    assert (entry["family"], entry["quantization"], entry["runnable"]) == ("flux", "Q8_0", False)
    assert "pip install gguf" in entry["reason"]
    with pytest.raises(UnsupportedModel, match="gguf` package is not installed") as err:
        manager.check("tiny-flux-Q8_0")
    assert "pip install gguf" in err.value.fix
    with pytest.raises(UnsupportedModel, match="not installed"):
        manager.check(str(with_folders["flux_file"]))  # by path too


def test_a_folder_gguf_is_a_base_model_by_name_with_its_family_and_controlnets(with_folders: dict[str, Path]) -> None:
    manager = ModelManager(device="cpu", gguf_companions={"flux": "builtin:tiny-flux"})
    manager.check("tiny-flux-Q8_0")
    manager.check("tiny-flux-Q8_0.gguf")
    assert manager.family("tiny-flux-Q8_0") == "flux"
    assert manager.family("schnell-tiny") == "flux-schnell"
    assert manager.default_controlnet("tiny-flux-Q8_0", "depth") == default_controlnet(
        "black-forest-labs/FLUX.1-dev", "flux", "depth") == FLUX_UNION  # as any FLUX.1 base gets
    with pytest.raises(UnsupportedModel, match="llama-tiny .*not a diffusion transformer"):
        manager.check("llama-tiny")
    with pytest.raises(ModelNotFound, match="is a base, not a controlnet"):
        manager.check("tiny-flux-Q8_0", "controlnet")


def test_a_companion_of_another_family_is_refused_at_check(with_folders: dict[str, Path]) -> None:
    manager = ModelManager(device="cpu", gguf_companions={"flux": "builtin:tiny-qwen"})
    with pytest.raises(UnsupportedModel, match="companion builtin:tiny-qwen is Qwen-Image") as err:
        manager.check("tiny-flux-Q8_0")
    assert "--gguf-companion flux=" in err.value.fix


def _png_pixels(server, job_id: str) -> np.ndarray:
    status, _, png = server.request("GET", f"/v1/jobs/{job_id}/results/0")
    assert status == 200
    return np.asarray(Image.open(io.BytesIO(png)))


def test_a_job_names_a_folder_gguf_through_the_server(with_folders: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))  # no companion downloaded here
    server = start_server(args=("--models-folder", str(with_folders["comfy"]),
                                "--gguf-companion", "flux=builtin:tiny-flux"))
    try:
        status, body = server.json("GET", "/v1/models")
        entry = {m["id"]: m for m in body["models"]}["tiny-flux-Q8_0"]
        assert (entry["family"], entry["quantization"], entry["companion"]) == ("flux", "Q8_0", "builtin:tiny-flux")
        from addon.core.model_list import label  # what the add-on's search list shows for this very row

        assert label(entry) == "FLUX.1 [dev] · GGUF Q8_0 · models folder"

        spec = {"model": "tiny-flux-Q8_0", "prompt": "a stone well", "width": 64, "height": 64, "steps": 3,
                "seed": 7, "stages": [{"type": "generate"}]}
        by_name = server.submit_ok(spec, {})
        by_path = server.submit_ok({**spec, "model": str(with_folders["flux_file"])}, {})
        record = server.wait(by_name)
        assert record["status"] == "done", record
        assert server.wait(by_path)["status"] == "done"
        a, b = _png_pixels(server, by_name), _png_pixels(server, by_path)
        assert a.shape == (64, 64, 3) and a.std() > 1
        assert np.array_equal(a, b)  # the same transformer and companion, found by its file name

        # Qwen-Image's companion (Qwen/Qwen-Image) is not in the HF cache and the server is offline:
        # refused at submit, before anything loads, naming both fixes.
        status, body = server.submit({**spec, "model": "tiny-qwen-F16"}, {})
        assert status == 404, body
        text = str(body)
        assert "GGUF Qwen-Image transformer" in text and "hf download Qwen/Qwen-Image" in text, body
        assert "--gguf-companion qwen=" in text, body
    finally:
        server.stop()


def test_the_cli_takes_gguf_companions_per_family() -> None:
    from backend import cli
    from backend.models.families import GGUF_FAMILIES

    assert cli.GGUF_FAMILIES == GGUF_FAMILIES  # the CLI's copy (it must not import torch to check arguments)
    args = cli.build_parser().parse_args(["serve", "--gguf-companion", "flux=/m/FLUX.1-dev",
                                          "--gguf-companion", "qwen=Qwen/Qwen-Image"])
    assert dict(args.gguf_companion) == {"flux": "/m/FLUX.1-dev", "qwen": "Qwen/Qwen-Image"}
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["serve", "--gguf-companion", "zimage=x"])  # no GGUF family


def test_the_models_command_prints_quantization_and_why_a_file_is_not_usable(
        with_folders: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from backend import cli

    assert cli.main(["models", "--device", "cpu"]) == 0
    lines = {line.split("\t")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["tiny-flux-Q8_0"].split("\t")[1:] == ["base", "flux GGUF Q8_0", "folder", "installed"]
    assert "not usable: not a diffusion transformer" in lines["llama-tiny"]


def test_listing_reads_the_header_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose tensor data is absent (its header promises ~12 MB of Q4_K weights that are not there)
    is still classified: the scanner reads the tensor infos, never the data."""
    path = tmp_path / "models" / "unet" / "header-only.gguf"
    path.parent.mkdir(parents=True)
    writer = gguf.GGUFWriter(str(path), arch="flux")
    q4k = gguf.GGMLQuantizationType.Q4_K  # 144 bytes per 256 weights
    for name in ("double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight", "img_in.weight",
                 "guidance_in.in_layer.weight"):
        writer.add_tensor_info(name, (3072, 3072 // 256 * 144), np.dtype(np.uint8), 3072 * 3072 // 256 * 144,
                               raw_dtype=q4k)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    assert path.stat().st_size < 4096
    monkeypatch.setenv("SCENECAST_MODELS_FOLDERS", str(tmp_path))
    entry = _listed(ModelManager(device="cpu"))["header-only"]
    assert (entry["kind"], entry["family"], entry["quantization"], entry["runnable"]) == ("base", "flux", "Q4_K", True)
    assert read_gguf_tensors(path)["img_in.weight"].shape == (3072, 3072)
    # listed again (the panel refreshes every 30 s): remembered per path, size and mtime, nothing read
    from backend.models import folders

    def no_reading(path: object) -> None:
        raise AssertionError(f"{path} read again")

    monkeypatch.setattr(folders, "read_gguf_tensors", no_reading)
    assert _listed(ModelManager(device="cpu"))["header-only"]["quantization"] == "Q4_K"
