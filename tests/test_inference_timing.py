"""Inference timing: two models that do identical computation, timed the way rule inference times them (loaded by
load_for_eval, timed by time_rounds in interleaved rounds), take the same time. The default build once timed the
QLoRA model merged into fp32 1.25x faster than the fp32 standard model, each in its own job (docs/methods.md,
"The merged-model anomaly")."""
import statistics

import pytest
import torch

from conftest import LORA_TARGETS
from qrepro.data.tokenizer import train_bpe
from qrepro.evaluation.inference import time_rounds
from qrepro.model.causal_lm import random_model
from qrepro.model.loading import load_for_eval
from qrepro.runtime import set_threads
from tiny_models import tiny_config

PROMPTS = ["The history of artificial intelligence", "The future of artificial intelligence is",
           "In the field of machine learning,", "Climate change has become"]


@pytest.mark.slow
def test_identical_compute_models_time_alike_in_interleaved_rounds(tmp_path):
    """The fp32 model loaded as `full` (from its safetensors) and QLoRA merged into fp32 (NF4 base dequantized, the
    adapter folded in): the same architecture, dtype and operations, other weights. Timed in one job's interleaved
    rounds, the ratio of their median generation times lies within 0.9-1.1."""
    from qrepro.training.variants import build_qlora

    set_threads(2)
    texts = [" ".join(PROMPTS)] * 50
    tokenizer = train_bpe(texts, vocab_size=512)
    # big enough that generation times are measured, not noise
    config = tiny_config("llama", len(tokenizer), tokenizer.bos_token_id or 1, tokenizer.eos_token_id or 2,
                         hidden_size=128, num_hidden_layers=4, intermediate_size=384)
    random_model(config, seed=0).save_pretrained(tmp_path / "base")
    random_model(config, seed=1).save_pretrained(tmp_path / "full")
    quant = dict(quant_type="nf4", double_quant=True, compute_dtype="fp32")
    lora = dict(r=16, alpha=32, dropout=0.0, bias="none", target_modules=list(LORA_TARGETS))
    build_qlora(str(tmp_path / "base"), quant, lora, "fp32", cuda=False, gradient_checkpointing=False) \
        .save_pretrained(tmp_path / "adapter")
    models = {"full": load_for_eval("full", None, str(tmp_path / "full"), quant, "fp32", cuda=False),
              "qlora_merged": load_for_eval("qlora_merged", str(tmp_path / "base"), str(tmp_path / "adapter"), quant,
                                            "fp32", cuda=False)}
    assert {type(m.model.layers[0].mlp.down_proj) for m in models.values()} == {torch.nn.Linear}
    assert {p.dtype for m in models.values() for p in m.parameters()} == {torch.float32}
    results = time_rounds(models, tokenizer, PROMPTS, new_tokens=50, rounds=10)
    ratio = results["qlora_merged"]["median_s"] / results["full"]["median_s"]
    print(f"medians: full {results['full']['median_s']:.4f} s, merged {results['qlora_merged']['median_s']:.4f} s, "
          f"ratio {ratio:.3f}; per round:",
          [round(statistics.median(t for t, r in zip(res["run_times_s"], res["run_rounds"]) if r == i), 4)
           for res in results.values() for i in range(1, 11)])
    assert 0.9 <= ratio <= 1.1
