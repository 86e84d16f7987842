"""Metric records for Tables 2, 5, 7 and 8: each function returns {metric name: value, inputs, details and the
fields its method text names}; units and methods are in paper/metrics.yaml."""
from __future__ import annotations

from qrepro.hardware import is_papers_gpu
from qrepro.model import analytic


def architecture_records(facts, source: list[str]) -> dict:
    from qrepro.model.anatomy import head_dim
    config = facts.config
    values = {"model_family": facts.family, "total_params": facts.total_params, "hidden_size": config.hidden_size,
              "num_layers": config.num_hidden_layers, "num_attention_heads": config.num_attention_heads,
              "num_key_value_heads": config.num_key_value_heads, "head_dim": head_dim(config),
              "intermediate_size": config.intermediate_size, "vocab_size": config.vocab_size,
              "tie_word_embeddings": bool(config.tie_word_embeddings)}
    return {name: dict(value=value, inputs=source) for name, value in values.items()}


def notebook_numbers(facts) -> dict:
    """What the paper's notebook printed (paper/PROTOCOL.md), from the architecture alone.

    bitsandbytes stores two 4-bit weights per uint8 element, so numel() over a QLoRA model counts each
    quantized projection at half its size; prepare_model_for_kbit_training upcasts every parameter that is
    not 4-bit (embeddings, lm_head, norms) to fp32, and the LoRA weights are fp32. peft's
    print_trainable_parameters counts a Params4bit at twice its numel, i.e. at its logical size."""
    total_params, lora_params = facts.total_params, facts.trainable_params
    bnb = analytic.bnb_footprint_bytes(facts, double_quant=True)
    packed_base = bnb["quantized_params"] // 2 + bnb["unquantized_params"]
    notebook_total = packed_base + lora_params
    size_bytes = bnb["quantized_params"] // 2 + 4 * bnb["unquantized_params"] + 4 * lora_params
    peft_total = total_params + lora_params
    return {"packed_total": notebook_total, "size_mb": size_bytes / analytic.MB, "peft_total": peft_total,
            "trainable_percent_packed": 100 * lora_params / notebook_total,
            "trainable_percent_peft": 100 * lora_params / peft_total}


def structure_records(facts, seq_len: int, double_quant: bool, source: list[str]) -> dict:
    """Tables 5-7 from the architecture alone (facts: the model on the meta device, LoRA as peft resolved it): the
    paper's formulas, the real NF4 footprint, and the numbers the paper's notebook printed. Ratios between these are
    written by the comparisons rule."""
    total_params, lora_params = facts.total_params, facts.trainable_params
    paper = analytic.paper_sizes_mb(total_params, lora_params)
    flops = analytic.paper_flops_per_step(total_params, lora_params, seq_len)
    bnb = analytic.bnb_footprint_bytes(facts, double_quant)
    notebook = notebook_numbers(facts)
    values = {
        "lora_adapted_modules": ", ".join(facts.lora_names),
        "lora_trainable_params": lora_params,
        "lora_trainable_percent": 100 * lora_params / total_params,
        "size_fp16_mb_paper": paper["fp16"],
        "size_4bit_base_mb_paper": paper["base_4bit"],
        "size_adapters_mb_paper": paper["adapters"],
        "size_qlora_total_mb_paper": paper["qlora_total"],
        "flops_per_step_full_paper": flops["full"],
        "flops_per_step_qlora_paper": flops["qlora"],
        "size_qlora_bnb_mb": (bnb["total_bytes"] + lora_params * 4) / analytic.MB,
        "size_qlora_mb_notebook": notebook["size_mb"],
        "total_params_packed_notebook": notebook["packed_total"],
        "trainable_percent_packed_notebook": notebook["trainable_percent_packed"],
        "total_params_peft": notebook["peft_total"],
        "trainable_percent_peft": notebook["trainable_percent_peft"],
        "flops_per_token_full_analytic": analytic.model_flops_per_token(facts, seq_len, "full"),
        "flops_per_token_qlora_analytic": analytic.model_flops_per_token(facts, seq_len, "qlora"),
        "nf4_bits_per_weight": analytic.nf4_bits_per_weight(double_quant, max(facts.quantized_numels)),
    }
    records = {name: dict(value=value, inputs=source) for name, value in values.items()}
    records["size_qlora_bnb_mb"].update(details={**bnb, "lora_bytes": lora_params * 4},
                                        method_fields={"double_quant": double_quant})
    records["lora_adapted_modules"].update(details={"modules": list(facts.lora_modules), "count": len(facts.lora_modules),
                                                    "linear_layers": facts.linear_names})
    caveats = analytic.model_formula_caveats(facts, seq_len)
    for name in ("flops_per_token_full_analytic", "flops_per_token_qlora_analytic"):
        records[name].update(details={"formula_caveats": caveats}, method_fields={"caveats": "; ".join(caveats)})
    return records


def analytic_flops_records(facts, lora: dict | None, variant: str, seq_len: int, sequences_per_step: int,
                           real_tokens_fraction: float, gradient_checkpointing: bool, counted: int,
                           source: list[str]) -> dict:
    """Model and executed FLOPs per step by formula. Where the executed formula does not hold for this model's layout
    (analytic.executed_formula_caveats), flops_per_step_executed is the counted value (counted), and says so."""
    model = analytic.model_flops_per_token(facts, seq_len, variant)
    caveats = analytic.executed_formula_caveats(facts, seq_len)
    tokens = sequences_per_step * seq_len
    executed = (counted / tokens if caveats else
                analytic.executed_flops_per_token(facts, seq_len, variant, lora["r"] if lora else 0,
                                                  gradient_checkpointing))
    return {
        "flops_per_step_analytic": dict(
            value=model * tokens, inputs=source,
            method_fields={"variant": variant, "caveats": "; ".join(analytic.model_formula_caveats(facts, seq_len))},
            details={"flops_per_token": model, "tokens_per_step": tokens}),
        "flops_per_step_analytic_real_tokens": dict(value=model * tokens * real_tokens_fraction, inputs=source,
                                                    details={"real_tokens_fraction": real_tokens_fraction}),
        "flops_per_step_executed": dict(
            value=executed * tokens, inputs=source,
            method_fields={"variant": variant, "gradient_checkpointing": gradient_checkpointing,
                           "counted_instead": "; ".join(caveats)},
            details={"flops_per_token": executed, "tokens_per_step": tokens,
                     "gradient_checkpointing": gradient_checkpointing, "formula_caveats": caveats}),
    }


def paper_protocol_peak(device_peak: float, device_details: dict, t4_peak_tflops: float) -> tuple[float, str]:
    """The peak the paper's MFU divides by: its notebook's figure on a T4 (t4_peak_tflops, paper/paper_values.yaml),
    else this device's own peak."""
    gpu = device_details.get("gpu") or ""
    if is_papers_gpu(gpu):
        return t4_peak_tflops * 1e12, (f"the paper notebook's {t4_peak_tflops} TFLOP/s for a T4 ({gpu}; the spec sheet "
                                       "says 65)")
    return device_peak, (f"this device's peak (device/peak_flops.json); the paper's {t4_peak_tflops} TFLOP/s applies "
                         "to a T4 only")


def mfu_records(flops: dict[str, float], steps: int, train_time: float, step_time: float, peak: float,
                peak_method: str, peak_details: dict, sources: dict[str, list[str]], t4_peak_tflops: float) -> dict:
    """Table 8 two ways.

    paper:    flops_per_step_paper x steps / train_time_s (wall clock, evaluation and saves included)
              / the paper's peak (its notebook's figure on a T4, else this device's).
    analytic: flops_per_step_analytic / step_time_s (median optimizer step, no evaluation or saves) / peak.
    """
    paper_peak, paper_peak_source = paper_protocol_peak(peak, peak_details, t4_peak_tflops)
    achieved = {"paper": flops["paper"] * steps / train_time, "analytic": flops["analytic"] / step_time}
    peaks = {"paper": (paper_peak, paper_peak_source), "analytic": (peak, peak_method)}
    records = {}
    for label in ("paper", "analytic"):
        divisor, divisor_source = peaks[label]
        records[f"achieved_tflops_{label}"] = dict(value=achieved[label] / 1e12, inputs=sources[label])
        records[f"mfu_{label}"] = dict(
            value=100 * achieved[label] / divisor, inputs=sources[label],
            method_fields={"peak_flops": divisor, "peak_source": divisor_source},
            details={"peak_flops": divisor, "peak_source": divisor_source, "achieved_flops": achieved[label]})
    return records
