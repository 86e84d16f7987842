"""Measured model size: bytes held in memory (quantization state included) and bytes on disk."""
from __future__ import annotations

from pathlib import Path

import torch


def _quant_state_tensors(quant_state):
    """absmax, offset and the nested (double-quant) state of a bitsandbytes QuantState."""
    tensors = [quant_state.absmax, getattr(quant_state, "offset", None)]
    nested = getattr(quant_state, "state2", None)
    if nested is not None:
        tensors += [nested.absmax, nested.code]
    return [t for t in tensors if isinstance(t, torch.Tensor)]


def memory_bytes(model) -> dict:
    """Every parameter and buffer once, plus the quantization constants that get_memory_footprint()
    misses. The 16-entry NF4 code table is shared, so it is not counted per layer."""
    seen: set[int] = set()
    totals = {"parameters": 0, "buffers": 0, "quant_state": 0}

    def add(kind, tensor):
        key = tensor.untyped_storage().data_ptr() if tensor.device.type != "meta" else id(tensor)
        if key in seen:
            return
        seen.add(key)
        totals[kind] += tensor.numel() * tensor.element_size()

    for param in model.parameters():
        add("parameters", param)
        quant_state = getattr(param, "quant_state", None)
        if quant_state is not None:
            for tensor in _quant_state_tensors(quant_state):
                add("quant_state", tensor)
    for buffer in model.buffers():
        add("buffers", buffer)
    totals["total"] = sum(totals.values())
    return totals


def disk_bytes(*paths: str | Path) -> int:
    """Bytes of the weight files (safetensors) under the given artifact folders."""
    return sum(f.stat().st_size for p in paths for f in Path(p).rglob("*.safetensors"))
