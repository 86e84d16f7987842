"""The memory guard refuses a training job that cannot fit, before anything is loaded."""
import pytest

from conftest import LORA_TARGETS, PAPER


def test_memory_guard_refuses_what_cannot_fit():
    from qrepro.model.anatomy import describe
    from qrepro.model.causal_lm import build_config
    from qrepro.training.resources import GIB, InsufficientMemoryError, guard, training_memory_estimate
    from tiny_models import paper_architecture
    arch = paper_architecture()  # TinyLlama-1.1B
    config = build_config(arch, arch["vocab_size"], 1, 2)
    lora = dict(r=16, alpha=32, dropout=0.0, bias="none", target_modules=list(LORA_TARGETS))
    full = training_memory_estimate(describe(config), "full", 2, 512)
    facts = describe(config, lora)
    assert (facts.total_params, facts.trainable_params) == (PAPER["t2_total_params"], PAPER["t6_trainable_qlora"])
    qlora = training_memory_estimate(facts, "qlora", 4, 512, optimizer="paged_adamw_8bit")
    assert 17 * GIB < full["total"] < 25 * GIB and qlora["parameters_and_states"] < 1 * GIB < qlora["total"] < 8 * GIB
    with pytest.raises(InsufficientMemoryError, match=r"fine-tuning full needs about .* GiB .* only 8.0 GiB of available RAM"):
        guard(full, 8 * GIB, "available RAM", "fine-tuning full")
    guard(qlora, 8 * GIB, "available RAM", "fine-tuning qlora")
