"""Counted FLOPs (FlopCounterMode with the CPU attention and 4-bit matmul formulas) against the analytic count."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from qrepro.evaluation.flop_count import counted_step_flops
from qrepro.model import analytic
from conftest import LORA_TARGETS
from qrepro.model.anatomy import describe
from qrepro.training.variants import build_full, build_qlora
from tiny_models import save_tiny_model, tiny_arch, tiny_config

ARCH = tiny_arch("llama")
VOCAB, BATCH, SEQ = 512, 2, 64
LORA = dict(r=16, alpha=32, dropout=0.0, bias="none", target_modules=list(LORA_TARGETS))
QUANT = dict(quant_type="nf4", double_quant=True, compute_dtype="auto")
# the tiny LLaMA's shapes, for the counts by hand
H, L, I, HEADS = ARCH["hidden_size"], ARCH["num_hidden_layers"], ARCH["intermediate_size"], ARCH["num_attention_heads"]
Q = H // HEADS                          # head size
KV = ARCH["num_key_value_heads"] * Q    # k_proj and v_proj outputs
PROJECTIONS = L * (H * H + 2 * H * KV + H * H + 3 * H * I)  # q, k+v, o, gate/up/down in every layer
HEAD = VOCAB * H


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("flops_base"), "llama", VOCAB)


def _batch():
    ids = torch.randint(3, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))
    return [{"input_ids": ids, "labels": ids}]


def test_torch_alone_misses_cpu_attention_and_the_4bit_matmul(base_dir):
    """Why flop_count.py registers formulas: without them the counter sees no attention and no 4-bit forward."""
    model = build_qlora(base_dir, QUANT, LORA, precision="fp32", cuda=False, gradient_checkpointing=False)
    counter = FlopCounterMode(display=False)
    with counter:
        model(**_batch()[0]).loss.backward()
    ops = {str(op) for op in counter.get_flop_counts()["Global"]}
    assert ops == {"aten.mm"}


def test_counts_by_hand_for_full_fine_tuning(base_dir):
    counted = counted_step_flops(build_full(base_dir, "fp32"), _batch(), None)
    tokens = BATCH * SEQ
    attention_forward = 4 * L * HEADS * Q * SEQ * tokens  # 4 L H Q T per token
    assert counted["per_operator"]["aten.mm"] == 6 * (PROJECTIONS + HEAD) * tokens
    assert counted["per_operator"]["aten._scaled_dot_product_flash_attention_for_cpu"] == attention_forward
    # torch's flash-attention backward formula: the scores are recomputed, then four matmuls (2.5 x forward)
    assert counted["per_operator"]["aten._scaled_dot_product_flash_attention_for_cpu_backward"] == attention_forward * 5 // 2


@pytest.mark.parametrize("variant, checkpointing", [("full", False), ("full", True), ("qlora", False), ("qlora", True)])
def test_counted_equals_the_analytic_executed_flops(base_dir, variant, checkpointing):
    if variant == "full":
        model = build_full(base_dir, "fp32", checkpointing)
    else:
        model = build_qlora(base_dir, QUANT, LORA, precision="fp32", cuda=False, gradient_checkpointing=checkpointing)
    counted = counted_step_flops(model, _batch(), None)["total"]
    facts = describe(base_dir, LORA if variant == "qlora" else None)
    executed = analytic.executed_flops_per_token(facts, SEQ, variant, LORA["r"] if variant == "qlora" else 0,
                                                 checkpointing) * BATCH * SEQ
    assert counted == executed  # every matmul and attention FLOP accounted for, exactly


def test_model_flops_are_palm_and_exclude_recomputation():
    config = tiny_config("llama", VOCAB)
    n = PROJECTIONS + HEAD
    attention = 12 * L * HEADS * Q * SEQ
    lora = L * 16 * (2 * (H + H) + 2 * (H + KV) + 3 * (H + I))  # r x (in + out) of the seven projections
    full, qlora = describe(config), describe(config, LORA)
    assert qlora.trainable_params == lora
    assert analytic.model_flops_per_token(full, SEQ, "full") == 6 * n + attention
    assert analytic.model_flops_per_token(qlora, SEQ, "qlora") == 4 * n + 6 * lora + attention
    assert analytic.executed_flops_per_token(qlora, SEQ, "qlora", 16, True) > analytic.model_flops_per_token(qlora, SEQ, "qlora")
