"""FLOPs counted by torch over one real optimizer step.

torch.utils.flop_counter.FlopCounterMode counts aten matmuls and the GPU attention kernels, but has no
formula for two ops a step here runs through:
- the CPU flash-attention kernel (aten._scaled_dot_product_flash_attention_for_cpu and its backward),
  which would count 0;
- bitsandbytes' 4-bit matmul (torch.ops.bitsandbytes.gemm_4bit), the forward of every Linear4bit layer.
Both are registered here with torch's own SDPA formulas and 2·M·N·K. bitsandbytes' dequantization is not
a matmul and is not counted; the matmul of a backward pass through a dequantized weight is an aten.mm and is.
"""
from __future__ import annotations

from math import prod

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


def _gemm_4bit_flop(a_shape, b_shape, shape_b, *args, out_shape=None, **kwargs) -> int:
    """A (..., K) times a packed 4-bit weight of logical shape (N, K): 2·M·N·K."""
    n, k = shape_b
    return 2 * prod(a_shape[:-1]) * n * k


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """torch's formula for the GPU attention kernels: QK^T and AV, causality ignored."""
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                            **kwargs) -> int:
    """torch's formula for the GPU flash-attention backward: the scores are recomputed, then four matmuls."""
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def extra_formulas() -> dict:
    mapping = {
        aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flop,
    }
    try:
        import bitsandbytes  # noqa: F401  (defines torch.ops.bitsandbytes)
        mapping[torch.ops.bitsandbytes.gemm_4bit] = _gemm_4bit_flop
    except ImportError:
        pass
    return mapping


def counting_mode() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=extra_formulas())


def counted_step_flops(model, micro_batches: list[dict], autocast_dtype: torch.dtype | None) -> dict:
    """FlopCounterMode over forward and backward of every micro-batch of one optimizer step.
    Returns the total and the count per operator."""
    model.train()
    device_type = "cuda" if next(model.parameters()).is_cuda else "cpu"
    counter = counting_mode()
    with counter:
        for batch in micro_batches:
            with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                loss = model(**batch).loss
            loss.backward()
    model.zero_grad(set_to_none=True)
    per_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return {"total": int(counter.get_total_flops()), "per_operator": per_op}
