"""Verdicts on the paper's headline claims; the thresholds come from templates/claims.yaml."""
from __future__ import annotations

from pathlib import Path

import yaml

from .collect import MetricStore

REPRODUCED, NOT_REPRODUCED, NOT_COMPARABLE = "reproduced", "not reproduced", "not comparable at this scale"


def _evidence(m: MetricStore) -> dict[str, tuple[float, str, list[str]]]:
    """claim id -> (the value the reproduction measured, how, source files)."""
    V = m.value
    P = lambda scope, name: m.paths[(scope, name)]  # noqa: E731
    return {
        "compression": (V("paper_structure", "compression_ratio_bnb"),
                        f"bitsandbytes' real layout for TinyLlama-1.1B gives {V('paper_structure', 'compression_ratio_bnb'):.2f}x "
                        f"(NF4 at {V('paper_structure', 'nf4_bits_per_weight'):.3f} bits/weight, embeddings and lm_head in 16 bit); "
                        f"the paper's formula gives {V('paper_structure', 'compression_ratio_paper'):.2f}x. This run measured "
                        f"{V('full', 'model_size_memory_mb') / V('qlora', 'model_size_memory_mb'):.2f}x in memory at its own scale.",
                        [P("paper_structure", "compression_ratio_bnb"), P("paper_structure", "compression_ratio_paper"),
                         P("full", "model_size_memory_mb"), P("qlora", "model_size_memory_mb")]),
        "trainable_reduction": (100 - V("paper_structure", "lora_trainable_percent"),
                                f"LoRA r=16 on the seven projections of TinyLlama-1.1B trains "
                                f"{V('paper_structure', 'lora_trainable_params'):,} of "
                                f"{V('paper_architecture', 'total_params'):,} parameters; this run trains "
                                f"{V('qlora', 'trainable_percent'):.2f}% of its smaller model.",
                                [P("paper_structure", "lora_trainable_percent"), P("qlora", "trainable_percent")]),
        "flops_reduction": (100 * (1 - V("paper_structure", "flops_per_token_qlora_analytic")
                                   / V("paper_structure", "flops_per_token_full_analytic")),
                            f"Counting FLOPs (frozen 4-bit weights still need the forward pass and activation gradients) gives "
                            f"{100 * (1 - V('paper_structure', 'flops_per_token_qlora_analytic') / V('paper_structure', 'flops_per_token_full_analytic')):.1f}% "
                            f"fewer FLOPs for TinyLlama-1.1B; the paper's 73.9% comes from its assumed 0.25 factor "
                            f"(its formula gives {100 * (1 - V('paper_structure', 'flops_per_step_qlora_paper') / V('paper_structure', 'flops_per_step_full_paper')):.1f}%). "
                            f"FlopCounterMode in this run: {100 * (1 - V('qlora', 'flops_per_step_counted') / V('full', 'flops_per_step_counted')):.1f}% fewer per step.",
                            [P("paper_structure", "flops_per_token_qlora_analytic"), P("paper_structure", "flops_per_token_full_analytic"),
                             P("qlora", "flops_per_step_counted"), P("full", "flops_per_step_counted")]),
        "training_slowdown": (100 * (V("qlora", "train_time_s") / V("full", "train_time_s") - 1),
                              f"QLoRA took {V('qlora', 'train_time_s'):.1f} s vs {V('full', 'train_time_s'):.1f} s for standard "
                              f"fine-tuning (pure step time {V('qlora', 'pure_step_time_s'):.3f} vs {V('full', 'pure_step_time_s'):.3f} s).",
                              [P("qlora", "train_time_s"), P("full", "train_time_s")]),
        "perplexity_increase": (100 * (V("qlora", "perplexity_paper") / V("full", "perplexity_paper") - 1),
                                f"Paper protocol: {V('full', 'perplexity_paper'):.2f} (standard) vs {V('qlora', 'perplexity_paper'):.2f} (QLoRA); "
                                f"token-level: {V('full', 'perplexity_token'):.2f} vs {V('qlora', 'perplexity_token'):.2f} "
                                f"(base model {V('base', 'perplexity_token'):.2f}).",
                                [P("qlora", "perplexity_paper"), P("full", "perplexity_paper"),
                                 P("qlora", "perplexity_token"), P("full", "perplexity_token")]),
        "inference_slowdown": (V("qlora", "inference_time_s") / V("full", "inference_time_s"),
                               f"{V('full', 'tokens_per_s'):.1f} tokens/s (standard) vs {V('qlora', 'tokens_per_s'):.1f} (QLoRA, "
                               f"4-bit base + adapter) and {V('qlora_merged', 'tokens_per_s'):.1f} (QLoRA merged into 16 bit).",
                               [P("qlora", "inference_time_s"), P("full", "inference_time_s"), P("qlora_merged", "tokens_per_s")]),
        "mfu": (V("full", "mfu_paper") / V("qlora", "mfu_paper"),
                f"MFU with the paper's FLOP formula: {V('full', 'mfu_paper'):.2f}% vs {V('qlora', 'mfu_paper'):.2f}%; with analytic "
                f"FLOPs: {V('full', 'mfu_analytic'):.2f}% vs {V('qlora', 'mfu_analytic'):.2f}%.",
                [P("full", "mfu_paper"), P("qlora", "mfu_paper"), P("full", "mfu_analytic"), P("qlora", "mfu_analytic")]),
    }


def verdicts(m: MetricStore, claims_path: str, paper_scale: bool) -> list[dict]:
    spec = yaml.safe_load(Path(claims_path).read_text())["claims"]
    evidence = _evidence(m)
    out = []
    for claim in spec:
        value, how, sources = evidence[claim["id"]]
        published = claim["published"]
        deviation = value / published - 1
        if claim["scale_dependent"] and not paper_scale:
            verdict = NOT_COMPARABLE
        elif abs(deviation) <= claim["rel_tolerance"]:
            verdict = REPRODUCED
        else:
            verdict = NOT_REPRODUCED
        out.append({**claim, "reproduced_value": value, "deviation": deviation, "verdict": verdict,
                    "evidence": how, "sources": sources})
    return out
