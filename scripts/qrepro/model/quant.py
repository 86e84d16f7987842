"""bitsandbytes 4-bit loading, with no silent fallback, and the CPU eval-repacking guard."""
from __future__ import annotations

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


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
