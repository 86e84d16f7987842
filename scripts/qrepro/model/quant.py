"""bitsandbytes 4-bit loading, with no silent fallback, and the CPU eval-repacking guard."""
from __future__ import annotations

import importlib.util
import logging
import sys

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# bitsandbytes' optimised CPU 4-bit matmul (bitsandbytes/backends/cpu/ops.py, 0.50): on a CPU with AVX512-BF16,
# importing bitsandbytes calls kernels.get_kernel(CPU_4BIT_KERNEL_REPO).gemm_4bit_forward, which downloads the kernel
# from the Hugging Face hub, and on failure logs a warning and keeps gemm_4bit_forward_kernel = None
CPU_4BIT_KERNEL_REPO = "kernels-community/quantization-bitsandbytes"
CPU_OPS_MODULE = "bitsandbytes.backends.cpu.ops"


class _Warnings(logging.Handler):
    """The warnings bitsandbytes' CPU backend logs when it is imported (attached before it is)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_CPU_OPS_WARNINGS = _Warnings()
logging.getLogger(CPU_OPS_MODULE).addHandler(_CPU_OPS_WARNINGS)


def cpu_4bit_kernel(cuda: bool) -> dict:
    """What bitsandbytes decided in this process about its optimised CPU 4-bit matmul, read from bitsandbytes itself:
    status "loaded", "not loaded" (tried and failed: reason), "not attempted" (no AVX512-BF16) or "not used (CUDA)"."""
    import bitsandbytes.functional as bnb_functional
    avx512_bf16 = bool(bnb_functional.has_avx512bf16())
    ops = sys.modules.get(CPU_OPS_MODULE)
    if ops is None:
        raise RuntimeError(f"{CPU_OPS_MODULE} was not imported: bitsandbytes {_bnb_version()} has no CPU backend here")
    attempted = hasattr(ops, "gemm_4bit_forward_kernel")  # set only where bitsandbytes tried to load it
    loaded = getattr(ops, "gemm_4bit_forward_kernel", None) is not None
    failures = [m for m in _CPU_OPS_WARNINGS.messages if "gemm_4bit_forward" in m]
    status = ("not used (CUDA)" if cuda else "loaded" if loaded else "not loaded" if attempted else "not attempted")
    return {"status": status, "cpu_avx512_bf16": avx512_bf16, "attempted": attempted, "loaded": loaded,
            "hub_repository": CPU_4BIT_KERNEL_REPO,
            "kernels_package_installed": importlib.util.find_spec("kernels") is not None,
            "warning_logged": failures[0] if failures else None,
            "bitsandbytes": _bnb_version()}


def _bnb_version() -> str:
    import bitsandbytes
    return bitsandbytes.__version__


class QuantizationUnavailableError(RuntimeError):
    pass


def require_bitsandbytes(cuda: bool):
    try:
        import bitsandbytes as bnb
    except ImportError as err:
        raise QuantizationUnavailableError(
            "QLoRA needs bitsandbytes for the 4-bit NF4 base, and it is not installed. "
            "Install it with `pip install -r requirements.txt` (bitsandbytes>=0.50 also runs 4-bit on CPU). "
            "The pipeline never trains LoRA on a 16-bit base and calls it QLoRA.") from err
    from packaging.version import Version
    if Version(bnb.__version__) < Version("0.50"):
        raise QuantizationUnavailableError(
            f"bitsandbytes {bnb.__version__} is installed; 4-bit and 8-bit optimizers on CPU need >= 0.50.")
    if cuda and not getattr(bnb.cextension.lib, "compiled_with_cuda", False):
        raise QuantizationUnavailableError(
            "This QLoRA run is on CUDA, but the installed bitsandbytes has no CUDA kernels "
            f"(backend: {bnb.cextension.BNB_BACKEND}). Install a CUDA build of bitsandbytes>=0.50 matching the "
            "CUDA runtime of torch (pip install --force-reinstall bitsandbytes on the GPU machine).")
    return bnb


def bnb_config(quant_type: str, double_quant: bool, compute_dtype: str):
    from transformers import BitsAndBytesConfig
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                              bnb_4bit_use_double_quant=double_quant,
                              bnb_4bit_compute_dtype=DTYPES[compute_dtype])


def linear4bit_modules(model):
    import bitsandbytes as bnb
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


def assert_quantized(model) -> int:
    """Fail unless the model really holds 4-bit layers; returns how many."""
    layers = linear4bit_modules(model)
    if not layers:
        raise QuantizationUnavailableError(
            "The QLoRA base has no bitsandbytes Linear4bit layers: 4-bit loading did not happen. "
            "Refusing to train LoRA on 16-bit weights under the QLoRA name.")
    return len(layers)


def disable_cpu_weight_repacking(model) -> int:
    """Guard against the bitsandbytes 0.50 CPU pitfall.

    On CPUs with AVX512-BF16, an eval-mode, no-grad forward through Linear4bit repacks the weight in
    place into a CPU-only layout; afterwards the training forward no longer returns an input gradient,
    so LoRA weights below the last layer silently stop learning. Turning the fast path off keeps the
    standard layout (evaluation during training then uses the ordinary dequantize + matmul).
    """
    layers = linear4bit_modules(model)
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    return len(layers)
