"""Peak matmul throughput: a table of known accelerators, or measured on this CPU."""
from __future__ import annotations

import time

import torch

# Dense fp16/bf16 tensor-core peaks from the vendors' spec sheets, in FLOP/s.
KNOWN_ACCELERATORS = {"T4": 65e12, "A100": 312e12, "H100": 989e12, "H200": 989e12}


def cuda_peak() -> tuple[float, str, str]:
    """The spec-sheet dense fp16/bf16 peak of this GPU: (FLOP/s, the accelerator it was matched to, the GPU's name)."""
    name = torch.cuda.get_device_name()
    for key, peak in KNOWN_ACCELERATORS.items():
        if key in name:
            return peak, key, name
    raise ValueError(f"no known peak for GPU {name!r}; set evaluation.peak_flops in the config")


def measure_matmul_peak(dtype: torch.dtype, threads: int, size: int = 2048, seconds: float = 2.0) -> dict:
    """Best sustained FLOP/s of a square matmul in `dtype` with `threads` torch threads: after three untimed
    warm-up products, runs of four products are timed for `seconds`; the fastest run gives the peak."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    rates, deadline = [], time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        rates.append(4 * 2 * size ** 3 / (time.perf_counter() - start))
    return {"best_flops": max(rates), "median_flops": sorted(rates)[len(rates) // 2], "runs": len(rates),
            "size": size, "threads": threads}
