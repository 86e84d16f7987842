"""FLOPs counted by torch over one real optimizer step."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def counted_step_flops(model, micro_batches: list[dict], autocast_dtype: torch.dtype | None) -> int:
    """FlopCounterMode over forward + backward of every micro-batch of one optimizer step.
    bitsandbytes' dequantization is not a matmul and is not counted; its dequantized matmuls are."""
    model.train()
    device_type = "cuda" if next(model.parameters()).is_cuda else "cpu"
    counter = FlopCounterMode(display=False)
    with counter:
        for batch in micro_batches:
            with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                loss = model(**batch).loss
            loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())
