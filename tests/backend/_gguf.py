"""Tiny GGUF files for tests, written with the ``gguf`` package as city96's transformer files are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def write_gguf(module: torch.nn.Module, path: Path, quant: str = "Q8_0") -> int:
    """Write ``module``'s weights to ``path``: 2-D weights whose rows split into 32-blocks as ``quant``
    (Q8_0) or F16, the rest (biases, norms) F32, as city96's files do. Returns how many are quantized."""
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    qtype = GGMLQuantizationType[quant]
    writer = GGUFWriter(str(path), arch="flux")
    quantized = 0
    for name, tensor in module.state_dict().items():
        a = tensor.float().numpy()
        if a.ndim == 2 and a.shape[1] % 32 == 0 and qtype != GGMLQuantizationType.F16:
            writer.add_tensor(name, quantize(a, qtype), raw_dtype=qtype)
            quantized += 1
        else:
            writer.add_tensor(name, a.astype(np.float16) if a.ndim > 1 else a.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return quantized
