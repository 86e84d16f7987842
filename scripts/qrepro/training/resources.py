"""Resource guard: refuse a training job that cannot fit, before anything is loaded."""
from __future__ import annotations

from qrepro.model.analytic import bnb_footprint_bytes
from qrepro.units import GIB


class InsufficientMemoryError(MemoryError):
    pass


def training_memory_estimate(facts, variant: str, batch: int, seq_len: int, weights_bytes: int = 4,
                             optimizer: str = "adamw_torch") -> dict:
    """A deliberately simple upper-bound style estimate, in bytes.

    full:  weights + gradients (weights_bytes each) + AdamW states (2 x fp32, or 2 x 1 byte for 8-bit)
    qlora: NF4 base (bitsandbytes layout) + fp32 LoRA weights, gradients and optimizer states
    both:  activations ~ 34 x hidden x seq x batch x layers bytes (Korthikanti et al., 16-bit, no recompute)
           + logits (batch x seq x vocab x 4 bytes, twice for the loss)
    """
    config, total_params = facts.config, facts.total_params
    state_bytes = 2 if "8bit" in optimizer else 8
    if variant == "full":
        params = total_params * (2 * weights_bytes + state_bytes)
    else:
        params = bnb_footprint_bytes(facts, True)["total_bytes"] + facts.trainable_params * (4 + 4 + state_bytes)
    activations = 34 * config.hidden_size * seq_len * batch * config.num_hidden_layers
    logits = 2 * batch * seq_len * config.vocab_size * 4
    return {"parameters_and_states": params, "activations": activations + logits,
            "total": params + activations + logits}


def available_bytes(cuda: bool) -> tuple[int, str]:
    if cuda:
        import torch
        free, _ = torch.cuda.mem_get_info()
        return free, "free GPU memory"
    import psutil
    return psutil.virtual_memory().available, "available RAM"


def guard(estimate: dict, available: int, where: str, what: str) -> None:
    if estimate["total"] > available:
        raise InsufficientMemoryError(
            f"{what} needs about {estimate['total'] / GIB:.1f} GiB (parameters and optimizer states "
            f"{estimate['parameters_and_states'] / GIB:.1f} GiB, activations {estimate['activations'] / GIB:.1f} GiB) "
            f"but only {available / GIB:.1f} GiB of {where} is there. Lower the batch size or data.max_length, "
            "turn on gradient_checkpointing, or use a machine with more memory.")


def estimate_for_job(base_dir: str, variant: str, hp: dict, seq_len: int) -> dict:
    """The estimate for one fine-tuning job, from the base model's config alone (meta device, no weights)."""
    from qrepro.model.anatomy import describe

    facts = describe(base_dir, hp["lora"] if variant == "qlora" else None)
    weights_bytes = 4 if variant == "qlora" or hp.get("weights_dtype", "fp32") == "fp32" else 2
    return training_memory_estimate(facts, variant, hp["batch_size"], seq_len, weights_bytes, hp["optim"])
