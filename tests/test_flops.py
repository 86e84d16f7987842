"""Counted FLOPs (FlopCounterMode with the CPU attention and 4-bit matmul formulas) against the analytic count."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from qrepro.evaluation.flop_count import counted_step_flops
from qrepro.model import analytic
from conftest import LORA_TARGETS
from qrepro.model.causal_lm import llama_config, random_model
from qrepro.training.variants import build_full, build_qlora

ARCH = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=384,
            max_position_embeddings=256, tie_word_embeddings=False, rms_norm_eps=1e-5, rope_theta=1e4)
VOCAB, BATCH, SEQ = 512, 2, 64
LORA = dict(r=16, alpha=32, dropout=0.0, bias="none", target_modules=list(LORA_TARGETS))
QUANT = dict(quant_type="nf4", double_quant=True, compute_dtype="auto")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flops_base")
    random_model(llama_config(ARCH, VOCAB, 1, 2), seed=0).save_pretrained(folder)
    return str(folder)


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
    projections = 2 * (128 * 128 + 2 * 128 * 64 + 128 * 128 + 3 * 128 * 384)  # q, k+v, o, gate/up/down; 2 layers
    head = VOCAB * 128
    attention_forward = 4 * 2 * 4 * 32 * SEQ * tokens  # 4 L H Q T per token
    assert counted["per_operator"]["aten.mm"] == 6 * (projections + head) * tokens
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
    executed = analytic.executed_flops_per_token(model.config, SEQ, variant, LORA if variant == "qlora" else None,
                                          checkpointing) * BATCH * SEQ
    assert counted == executed  # every matmul and attention FLOP accounted for, exactly


def test_model_flops_are_palm_and_exclude_recomputation():
    config = llama_config(ARCH, VOCAB, 1, 2)
    n = 2 * (128 * 128 + 2 * 128 * 64 + 128 * 128 + 3 * 128 * 384) + VOCAB * 128
    attention = 12 * 2 * 4 * 32 * SEQ
    lora = 2 * 16 * (2 * (128 + 128) + 2 * (128 + 64) + 3 * (128 + 384))
    assert analytic.model_flops_per_token(config, SEQ, "full") == 6 * n + attention
    assert analytic.model_flops_per_token(config, SEQ, "qlora", lora) == 4 * n + 6 * lora + attention
    assert analytic.executed_flops_per_token(config, SEQ, "qlora", LORA, True) > analytic.model_flops_per_token(config, SEQ, "qlora", lora)
