"""Metric records for Tables 2, 5, 7 and 8: each function returns {metric name: write_metric kwargs}."""
from __future__ import annotations

from qrepro.model import analytic as S

MB_UNIT = "MB (1024^2 bytes)"


def meta_model(arch: dict, vocab_size: int):
    """The architecture on the meta device: shapes and counts, no weights, no memory."""
    import torch

    from qrepro.model.llama import llama_config, random_model
    config = llama_config(arch, vocab_size, 1, 2)
    with torch.device("meta"):
        return config, random_model(config, seed=0)


def architecture_records(config, total_params: int, source: list[str]) -> dict:
    read = "Read from the model config"
    return {
        "total_params": dict(value=total_params, unit="parameters", inputs=source,
                             method="Sum of numel over the model's parameters (built on the meta device from the config)."),
        "hidden_size": dict(value=config.hidden_size, unit="", inputs=source, method=f"{read} (hidden_size)."),
        "num_layers": dict(value=config.num_hidden_layers, unit="", inputs=source, method=f"{read} (num_hidden_layers)."),
        "num_attention_heads": dict(value=config.num_attention_heads, unit="", inputs=source,
                                    method=f"{read} (num_attention_heads)."),
        "num_key_value_heads": dict(value=config.num_key_value_heads, unit="", inputs=source,
                                    method=f"{read} (num_key_value_heads)."),
        "intermediate_size": dict(value=config.intermediate_size, unit="", inputs=source,
                                  method=f"{read} (intermediate_size)."),
        "vocab_size": dict(value=config.vocab_size, unit="tokens", inputs=source, method=f"{read} (vocab_size)."),
        "tie_word_embeddings": dict(value=bool(config.tie_word_embeddings), unit="", inputs=source,
                                    method=f"{read} (tie_word_embeddings)."),
    }


def notebook_numbers(config, total_params: int, lora_params: int) -> dict:
    """What the paper's notebook printed (PROTOCOL.md), from the architecture alone.

    bitsandbytes stores two 4-bit weights per uint8 element, so numel() over a QLoRA model counts each
    quantized projection at half its size; prepare_model_for_kbit_training upcasts every parameter that is
    not 4-bit (embeddings, lm_head, norms) to fp32, and the LoRA weights are fp32. peft's
    print_trainable_parameters counts a Params4bit at twice its numel, i.e. at its logical size."""
    bnb = S.bnb_footprint_bytes(config, total_params, double_quant=True)
    packed_base = bnb["quantized_params"] // 2 + bnb["unquantized_params"]
    notebook_total = packed_base + lora_params
    size_bytes = bnb["quantized_params"] // 2 + 4 * bnb["unquantized_params"] + 4 * lora_params
    peft_total = total_params + lora_params
    return {"packed_total": notebook_total, "size_mb": size_bytes / S.MB, "peft_total": peft_total,
            "trainable_percent_packed": 100 * lora_params / notebook_total,
            "trainable_percent_peft": 100 * lora_params / peft_total}


def structure_records(config, total_params: int, lora_params: int, seq_len: int, double_quant: bool,
                      source: list[str]) -> dict:
    """Tables 5-7 from the architecture alone: the paper's formulas, the real NF4 footprint, and the numbers
    the paper's notebook printed. Ratios between these are written by the comparisons rule."""
    paper = S.paper_sizes_mb(total_params, lora_params)
    flops = S.paper_flops_per_step(total_params, lora_params, seq_len)
    bnb = S.bnb_footprint_bytes(config, total_params, double_quant)
    real_total = (bnb["total_bytes"] + lora_params * 4) / S.MB
    notebook = notebook_numbers(config, total_params, lora_params)
    formula = "Paper formula (PROTOCOL.md): "
    printed = "As the paper's notebook printed it (PROTOCOL.md), computed from the architecture: "
    rec = lambda value, unit, method, **kw: dict(value=value, unit=unit, method=method, inputs=source, **kw)  # noqa: E731
    return {
        "lora_trainable_params": rec(lora_params, "parameters",
                                     "Analytic: r x (in + out) summed over the targeted projections of every layer."),
        "lora_trainable_percent": rec(100 * lora_params / total_params, "%", "lora_trainable_params / total_params x 100."),
        "size_fp16_mb_paper": rec(paper["fp16"], MB_UNIT, formula + "total_params x 2 bytes."),
        "size_4bit_base_mb_paper": rec(paper["base_4bit"], MB_UNIT, formula + "total_params x 0.5 bytes."),
        "size_adapters_mb_paper": rec(paper["adapters"], MB_UNIT, formula + "trainable_params x 2 bytes."),
        "size_qlora_total_mb_paper": rec(paper["qlora_total"], MB_UNIT, formula + "4-bit base + adapters."),
        "flops_per_step_full_paper": rec(flops["full"], "FLOPs", formula + "6 x total_params x seq_len x 4 "
                                         "(a hard-coded batch of 4; the real step has batch x accumulation sequences)."),
        "flops_per_step_qlora_paper": rec(flops["qlora"], "FLOPs", formula + "6 x N x seq_len x 4 x 0.25 + 6 x "
                                          "trainable x seq_len x 4; the 0.25 is an assumed 4-bit speed-up, not a FLOP count."),
        "size_qlora_bnb_mb": rec(real_total, MB_UNIT, (
            "What a loaded QLoRA model really holds: projections as NF4 with their quantization constants "
            f"({'double' if double_quant else 'single'} quantization), embeddings, lm_head and norms in 16 bit "
            "(bitsandbytes' layout), plus the LoRA weights in fp32, the dtype peft keeps them in beside a 16-bit or "
            "4-bit base."), details={**bnb, "lora_bytes": lora_params * 4}),
        "size_qlora_mb_notebook": rec(notebook["size_mb"], MB_UNIT, printed + (
            "parameter bytes after prepare_model_for_kbit_training: packed NF4 weights (1 byte per 2 weights, "
            "quantization constants not counted), embeddings, lm_head and norms upcast to fp32, fp32 LoRA weights.")),
        "total_params_packed_notebook": rec(notebook["packed_total"], "parameters", printed + (
            "sum of numel over the QLoRA model: each 4-bit projection at half its weights (two per uint8), "
            "everything else and the LoRA weights at full count.")),
        "trainable_percent_packed_notebook": rec(notebook["trainable_percent_packed"], "%", printed + (
            "lora_trainable_params / total_params_packed_notebook x 100.")),
        "total_params_peft": rec(notebook["peft_total"], "parameters", printed + (
            "peft's print_trainable_parameters 'all params': 4-bit weights at their logical size, plus LoRA.")),
        "trainable_percent_peft": rec(notebook["trainable_percent_peft"], "%", printed + (
            "lora_trainable_params / total_params_peft x 100.")),
        "flops_per_token_full_analytic": rec(
            S.model_flops_per_token(config, seq_len, "full"), "FLOPs/token",
            "PaLM model FLOPs per training token for full fine-tuning: 6N + 12LHQT (N: decoder projections and "
            "output head), no recomputation."),
        "flops_per_token_qlora_analytic": rec(
            S.model_flops_per_token(config, seq_len, "qlora", lora_params), "FLOPs/token",
            "PaLM-style model FLOPs per training token for QLoRA: 2N forward + 2N activation gradients (frozen "
            "weights need no weight gradient) + 6 N_lora + 12LHQT, no recomputation."),
        "nf4_bits_per_weight": rec(S.nf4_bits_per_weight(double_quant, max(S.linear_weights(config))), "bits",
                                   "Storage bits per quantized weight of the largest projection, constants included."),
    }


def analytic_flops_records(config, lora: dict | None, lora_params: int, variant: str, seq_len: int,
                           sequences_per_step: int, real_tokens_fraction: float, gradient_checkpointing: bool,
                           source: list[str]) -> dict:
    model = S.model_flops_per_token(config, seq_len, variant, lora_params)
    executed = S.executed_flops_per_token(config, seq_len, variant, lora, gradient_checkpointing)
    tokens = sequences_per_step * seq_len
    return {
        "flops_per_step_analytic": dict(value=model * tokens, unit="FLOPs", inputs=source, method=(
            "PaLM model FLOPs per token x tokens per optimizer step (batch x accumulation x seq_len, padding "
            "included): " + ("6N + 12LHQT" if variant == "full" else
                             "2N forward + 2N activation gradients + 6 N_lora + 12LHQT")
            + "; N: decoder projections and output head; no recomputation (the numerator of MFU)."),
            details={"flops_per_token": model, "tokens_per_step": tokens}),
        "flops_per_step_analytic_real_tokens": dict(
            value=model * tokens * real_tokens_fraction, unit="FLOPs", inputs=source, method=(
                "flops_per_step_analytic scaled by the fraction of non-padding tokens in the training split: "
                "the compute that goes to real text."), details={"real_tokens_fraction": real_tokens_fraction}),
        "flops_per_step_executed": dict(value=executed * tokens, unit="FLOPs", inputs=source, method=(
            "Analytic FLOPs this implementation executes per optimizer step, recomputation included: model FLOPs "
            "plus flash attention's score recompute in the backward"
            + (", plus the forward recomputed by gradient checkpointing" if gradient_checkpointing else "")
            + ("; without checkpointing the first layer's q/k/v inputs need no gradient" if variant == "qlora"
               and not gradient_checkpointing else "") + " (structure.executed_flops_per_token)."),
            details={"flops_per_token": executed, "tokens_per_step": tokens,
                     "gradient_checkpointing": gradient_checkpointing}),
    }


def paper_protocol_peak(device_peak: float, device_details: dict) -> tuple[float, str]:
    """The peak the paper's MFU divides by: its notebook's 35.58 TFLOP/s on a T4, else this device's own peak."""
    from qrepro.evaluation.device_peak import PAPER_T4_PEAK
    gpu = device_details.get("gpu") or ""
    if "T4" in gpu:
        return PAPER_T4_PEAK, f"the paper notebook's 35.58 TFLOP/s for a T4 ({gpu}; the spec sheet says 65)"
    return device_peak, "this device's peak (device/peak_flops.json); the paper's 35.58 TFLOP/s applies to a T4 only"


def mfu_records(flops: dict[str, float], steps: int, train_time: float, step_time: float, peak: float,
                peak_method: str, peak_details: dict, sources: dict[str, list[str]]) -> dict:
    """Table 8 two ways.

    paper:    flops_per_step_paper x steps / train_time_s (wall clock, evaluation and saves included)
              / the paper's peak (35.58 TFLOP/s on a T4, else this device's).
    analytic: flops_per_step_analytic / step_time_s (median optimizer step, no evaluation or saves) / peak.
    """
    paper_peak, paper_peak_source = paper_protocol_peak(peak, peak_details)
    achieved = {"paper": flops["paper"] * steps / train_time, "analytic": flops["analytic"] / step_time}
    how = {"paper": "flops_per_step_paper x train_steps / train_time_s (paper protocol: wall clock with evaluation "
                    "and checkpoint saves)",
           "analytic": "flops_per_step_analytic / step_time_s (median optimizer step, evaluation and saves excluded)"}
    peaks = {"paper": (paper_peak, paper_peak_source), "analytic": (peak, peak_method)}
    records = {}
    for label in ("paper", "analytic"):
        divisor, divisor_source = peaks[label]
        records[f"achieved_tflops_{label}"] = dict(value=achieved[label] / 1e12, unit="TFLOP/s", inputs=sources[label],
                                                   timing=True, method=f"{how[label]}.")
        records[f"mfu_{label}"] = dict(
            value=100 * achieved[label] / divisor, unit="%", inputs=sources[label], timing=True,
            method=f"{how[label]} / peak ({divisor / 1e12:.3f} TFLOP/s: {divisor_source}) x 100.",
            details={"peak_flops": divisor, "peak_source": divisor_source, "achieved_flops": achieved[label]})
    return records
