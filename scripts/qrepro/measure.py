"""Metric records for Tables 2, 5, 7 and 8: each function returns {metric name: write_metric kwargs}."""
from __future__ import annotations

from . import structure as S

MB_UNIT = "MB (1024^2 bytes)"


def meta_model(arch: dict, vocab_size: int):
    """The architecture on the meta device: shapes and counts, no weights, no memory."""
    import torch
    from .modeling import llama_config, random_model
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


def structure_records(config, total_params: int, lora_params: int, seq_len: int, double_quant: bool,
                      source: list[str]) -> dict:
    """Tables 5-7 from the architecture alone: the paper's formulas and the real NF4 footprint."""
    paper = S.paper_sizes_mb(total_params, lora_params)
    flops = S.paper_flops_per_step(total_params, lora_params, seq_len)
    bnb = S.bnb_footprint_bytes(config, total_params, double_quant)
    real_total = (bnb["total_bytes"] + lora_params * 2) / S.MB
    formula = "Paper formula (PROTOCOL.md): "
    rec = lambda value, unit, method, **kw: dict(value=value, unit=unit, method=method, inputs=source, **kw)  # noqa: E731
    return {
        "lora_trainable_params": rec(lora_params, "parameters",
                                     "Analytic: r x (in + out) summed over the targeted projections of every layer."),
        "lora_trainable_percent": rec(100 * lora_params / total_params, "%", "lora_trainable_params / total_params x 100."),
        "size_fp16_mb_paper": rec(paper["fp16"], MB_UNIT, formula + "total_params x 2 bytes."),
        "size_4bit_base_mb_paper": rec(paper["base_4bit"], MB_UNIT, formula + "total_params x 0.5 bytes."),
        "size_adapters_mb_paper": rec(paper["adapters"], MB_UNIT, formula + "trainable_params x 2 bytes."),
        "size_qlora_total_mb_paper": rec(paper["qlora_total"], MB_UNIT, formula + "4-bit base + adapters."),
        "compression_ratio_paper": rec(paper["compression_ratio"], "x", formula + "fp16 / (4-bit base + adapters)."),
        "size_reduction_percent_paper": rec(paper["reduction_percent"], "%", formula + "(1 - qlora / fp16) x 100."),
        "flops_per_step_full_paper": rec(flops["full"], "FLOPs", formula + "6 x total_params x seq_len x 4 "
                                         "(a hard-coded batch of 4; the real step has batch x accumulation sequences)."),
        "flops_per_step_qlora_paper": rec(flops["qlora"], "FLOPs", formula + "6 x N x seq_len x 4 x 0.25 + 6 x "
                                          "trainable x seq_len x 4; the 0.25 is an assumed 4-bit speed-up, not a FLOP count."),
        "size_qlora_bnb_mb": rec(real_total, MB_UNIT, (
            "What bitsandbytes really holds: projections as NF4 with their quantization constants "
            f"({'double' if double_quant else 'single'} quantization), embeddings, lm_head and norms in 16 bit, "
            "plus 16-bit adapters."), details={k: v for k, v in bnb.items()}),
        "compression_ratio_bnb": rec(paper["fp16"] / real_total, "x",
                                     "size_fp16_mb_paper / size_qlora_bnb_mb: the compression bitsandbytes really gives."),
        "flops_per_token_full_analytic": rec(
            S.analytic_flops_per_token(config, total_params, seq_len, "full"), "FLOPs/token",
            "PaLM-style analytic training FLOPs per token for full fine-tuning: 6N + 12LHQT (N without the input embedding)."),
        "flops_per_token_qlora_analytic": rec(
            S.analytic_flops_per_token(config, total_params, seq_len, "qlora", lora_params), "FLOPs/token",
            "Analytic training FLOPs per token for QLoRA: 2N forward + 2N activation gradients + 6 N_lora + 12LHQT."),
        "nf4_bits_per_weight": rec(S.nf4_bits_per_weight(double_quant, max(S.linear_weights(config))), "bits",
                                   "Storage bits per quantized weight of the largest projection, constants included."),
    }


def analytic_flops_records(config, total_params: int, lora_params: int, variant: str, seq_len: int,
                           sequences_per_step: int, real_tokens_fraction: float, gradient_checkpointing: bool,
                           source: list[str]) -> dict:
    per_token = S.analytic_flops_per_token(config, total_params, seq_len, variant, lora_params, gradient_checkpointing)
    tokens = sequences_per_step * seq_len
    return {
        "flops_per_step_analytic": dict(value=per_token * tokens, unit="FLOPs", inputs=source, method=(
            "PaLM-style analytic count per token x tokens per optimizer step (batch x accumulation x seq_len, "
            "padding included): " + ("6N + 12LHQT" if variant == "full" else
                                    "2N forward + 2N activation gradients + 6 N_lora + 12LHQT")
            + (" + recompute" if gradient_checkpointing else "") + "; N excludes the input embedding."),
            details={"flops_per_token": per_token, "tokens_per_step": tokens}),
        "flops_per_step_analytic_real_tokens": dict(
            value=per_token * tokens * real_tokens_fraction, unit="FLOPs", inputs=source, method=(
                "flops_per_step_analytic scaled by the fraction of non-padding tokens in the training split: "
                "the compute that goes to real text."), details={"real_tokens_fraction": real_tokens_fraction}),
    }


def mfu_records(flops_per_step: dict[str, float], steps: int, train_time: float, peak: float, peak_source: str,
                source: list[str]) -> dict:
    records = {}
    for label, flops in flops_per_step.items():
        achieved = flops * steps / train_time
        records[f"achieved_tflops_{label}"] = dict(value=achieved / 1e12, unit="TFLOP/s", inputs=source, timing=True,
            method=f"flops_per_step_{label} x steps / train_time_s.")
        records[f"mfu_{label}"] = dict(value=100 * achieved / peak, unit="%", inputs=source, timing=True,
            method=f"flops_per_step_{label} x steps / train_time_s / peak ({peak / 1e12:.3f} TFLOP/s: {peak_source}).",
            details={"peak_flops": peak, "peak_source": peak_source})
    return records
