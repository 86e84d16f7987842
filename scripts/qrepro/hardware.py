"""What this machine can do: CUDA, CPU bf16 support. Detected, never assumed."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cuda_visible_without_torch() -> bool:
    """Cheap CUDA check for parse time (no torch import): an NVIDIA device node exists."""
    return any(Path("/dev").glob("nvidia[0-9]*"))


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_supports_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16 make bf16 matmuls fast on x86; without them bf16 is emulated."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_precision(requested: str, cuda: bool) -> str:
    """Map the config's precision to what will really run; refuse what would silently differ."""
    if requested == "auto":
        if cuda:
            return "fp16"
        return "bf16" if cpu_supports_bf16() else "fp32"
    if requested == "fp16" and not cuda:
        raise ValueError("training.precision: fp16 needs a CUDA device; on CPU, accelerate would silently "
                         "train in fp32. Use precision: bf16 (CPU with AVX512-BF16/AMX), fp32 or auto.")
    return requested


def describe() -> dict:
    info = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "cpu_bf16": cpu_supports_bf16()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


def is_papers_gpu(gpu: str | None) -> bool:
    """The paper ran on an NVIDIA T4 (paper/PROTOCOL.md): whether a device name is one."""
    return "T4" in (gpu or "")
