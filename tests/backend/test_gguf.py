"""GGUF transformers (backend/models/gguf_files.py): a tiny FLUX.1 / Qwen-Image transformer written to a
.gguf file here (the ``gguf`` package's GGUFWriter, Q8_0 blocks from gguf.quants), detected from its
tensor names, loaded with diffusers' GGUFQuantizationConfig and run through our flow path with the
tiny builtin as its companion; checked against the unquantized tiny model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

from _gguf import write_gguf  # noqa: E402
from _tiny import RecordingProgress  # noqa: E402
from backend.models import ModelManager, UnsupportedModel  # noqa: E402
from backend.models.builtins import BASES  # noqa: E402
from backend.models.families import classify_gguf, gguf_tensor_shapes  # noqa: E402
from backend.pipelines import run_job  # noqa: E402
from backend.spec import JobSpec  # noqa: E402

FAMILIES = {"builtin:tiny-flux": "flux", "builtin:tiny-qwen": "qwen"}


def _job(model: str) -> np.ndarray:
    return JobSpec.model_validate({"model": model, "prompt": "a stone well", "width": 64, "height": 64, "steps": 3,
                                   "seed": 7, "stages": [{"type": "generate"}]})


@pytest.mark.parametrize("builtin", list(FAMILIES))
def test_q8_gguf_transformer_runs_our_flow_path_close_to_the_unquantized_model(builtin: str, tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    assert write_gguf(BASES[builtin]().transformer, path) > 3
    family = FAMILIES[builtin]
    assert classify_gguf(gguf_tensor_shapes(path)).family == family

    manager = ModelManager(device="cpu", gguf_companions={family: builtin})
    quantized = run_job(_job(str(path)), {}, manager, RecordingProgress())
    reference = run_job(_job(builtin), {}, ModelManager(device="cpu"), RecordingProgress()).images[0].astype(int)

    base = manager.base(str(path))
    params = {type(p).__name__ for p in base.transformer.parameters()}
    assert "GGUFParameter" in params  # the weights stay quantized in memory
    assert base.source == "gguf" and base.extra["companion"] == builtin
    rec = quantized.info["stages"][0]
    assert rec["family"] == family and rec["memory"]["mode"] == "full"
    diff = np.abs(quantized.images[0].astype(int) - reference)
    # Q8_0 keeps 8 bits per weight with a scale per 32: within 2 levels of 255 on average, 24 at most.
    print(builtin, "Q8_0 vs full:", diff.mean(), diff.max())
    assert 0 < diff.mean() <= 2.0 and diff.max() <= 24, (diff.mean(), diff.max())


def test_f16_gguf_transformer_output_matches_to_half_precision(tmp_path: Path) -> None:
    """Unquantized (F16) GGUF tensors: the transformer's output equals the float32 model's to fp16 rounding."""
    from diffusers import FluxTransformer2DModel

    from backend.models.gguf_files import load_gguf_transformer

    tr = BASES["builtin:tiny-flux"]().transformer
    path = tmp_path / "f16.gguf"
    write_gguf(tr, path, "F16")
    loaded = load_gguf_transformer(path, "flux", dict(tr.config), torch.float32)
    assert isinstance(loaded, FluxTransformer2DModel)
    g = torch.Generator().manual_seed(0)
    kw = dict(hidden_states=torch.randn(1, 16, 64, generator=g), encoder_hidden_states=torch.randn(1, 8, 32, generator=g),
              pooled_projections=torch.randn(1, 32, generator=g), timestep=torch.tensor([0.5]), guidance=torch.tensor([3.5]),
              img_ids=torch.zeros(16, 3), txt_ids=torch.zeros(8, 3), return_dict=False)
    with torch.no_grad():
        a, b = tr(**kw)[0], loaded(**kw)[0]
    assert torch.allclose(a, b, rtol=0, atol=2e-3 * a.abs().max().item()), (a - b).abs().max()


def test_gguf_family_detection_from_tensor_names() -> None:
    bfl = {"double_blocks.0.img_attn.qkv.weight": [9216, 3072], "single_blocks.0.linear1.weight": [21504, 3072],
           "img_in.weight": [3072, 64], "guidance_in.in_layer.weight": [3072, 256]}
    assert classify_gguf(bfl).family == "flux" and classify_gguf(bfl).note == "GGUF"
    schnell = {k: v for k, v in bfl.items() if not k.startswith("guidance_in")}
    assert classify_gguf(schnell).family == "flux-schnell"
    qwen = {"transformer_blocks.0.img_mod.1.weight": [18432, 3072], "txt_norm.weight": [3584],
            "img_in.weight": [3072, 64]}
    assert classify_gguf(qwen).family == "qwen"
    llama = {"token_embd.weight": [32000, 4096], "blk.0.attn_q.weight": [4096, 4096]}
    assert classify_gguf(llama) is None  # a language model GGUF: not ours
    zimage = {"context_refiner.0.attention.qkv.weight": [1], "noise_refiner.0.x": [1], "cap_embedder.1.weight": [1]}
    assert classify_gguf(zimage) is None  # Z-Image: not a GGUF family here (docs/models.md)


def test_a_gguf_that_is_no_image_transformer_is_refused_at_check(tmp_path: Path) -> None:
    from gguf import GGUFWriter

    path = tmp_path / "llm.gguf"
    writer = GGUFWriter(str(path), arch="llama")
    writer.add_tensor("token_embd.weight", np.zeros((8, 32), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UnsupportedModel, match="not a GGUF transformer"):
        ModelManager(device="cpu").check(str(path))
