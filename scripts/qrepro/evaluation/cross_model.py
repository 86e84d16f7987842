"""The compression claim across published models (beyond the paper): from each model's architecture alone, on the
meta device, what the paper's size formula and the real bitsandbytes layout give, LoRA's trainable share, and the
bytes of training state for full AdamW against QLoRA. Units and method texts: paper/metrics.yaml."""
from __future__ import annotations

from qrepro.model import analytic
from qrepro.model.anatomy import ALL_LINEAR, LoraTargetError, describe
from qrepro.training.resources import training_memory_estimate
from qrepro.units import GIB

WEIGHT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def lora_facts(config, lora: dict, targets):
    """describe() with LoRA on targets, or (None, the message) where a listed name matches no module of the model."""
    try:
        return describe(config, {**lora, "target_modules": targets}), None
    except LoraTargetError as err:
        return None, str(err)


def compression_records(config, lora: dict, paper_targets: list[str], size_targets: str, double_quant: bool,
                        full_optim: str, full_weights_dtype: str, qlora_optim: str, source: list[str],
                        published: dict) -> dict:
    """One published model's row. Sizes and training state use LoRA on every linear layer but the output head
    (all-linear): for the families with seven separate projections that is exactly the paper's seven names; for
    Phi-3 (fused qkv_proj, gate_up_proj) the seven names match no module, so their share is null and says why."""
    if size_targets != ALL_LINEAR:
        raise ValueError(f"compression_across_models: size_targets is {size_targets!r}; the metrics it writes "
                         f"(paper/metrics.yaml, *_all_linear) are defined for {ALL_LINEAR!r}")
    facts = describe(config, {**lora, "target_modules": size_targets})
    seven, seven_error = lora_facts(config, lora, paper_targets)
    total, trainable = facts.total_params, facts.trainable_params
    paper = analytic.paper_sizes_mb(total, trainable)
    bnb = analytic.bnb_footprint_bytes(facts, double_quant)
    qlora_bytes = bnb["total_bytes"] + trainable * 4  # fp32 LoRA weights beside the 4-bit base, as size_qlora_bnb_mb
    full_state = training_memory_estimate(facts, "full", 1, 1, WEIGHT_BYTES[full_weights_dtype], full_optim)
    qlora_state = training_memory_estimate(facts, "qlora", 1, 1, 4, qlora_optim)
    full_gb = full_state["parameters_and_states"] / GIB
    qlora_gb = qlora_state["parameters_and_states"] / GIB
    values = {
        "model_family": facts.family,
        "total_params": total,
        "size_fp16_mb_paper": paper["fp16"],
        "size_qlora_total_mb_paper": paper["qlora_total"],
        "size_qlora_bnb_mb": qlora_bytes / analytic.MB,
        "compression_ratio_paper_formula": paper["fp16"] / paper["qlora_total"],
        "compression_ratio_bnb_layout": paper["fp16"] / (qlora_bytes / analytic.MB),
        "lora_trainable_params_all_linear": trainable,
        "lora_trainable_percent_all_linear": 100 * trainable / total,
        "lora_trainable_percent_paper_names": None if seven is None else 100 * seven.trainable_params / total,
        "training_state_full_gb": full_gb,
        "training_state_qlora_gb": qlora_gb,
        "training_state_ratio": full_gb / qlora_gb,
    }
    records = {name: dict(value=value, inputs=source) for name, value in values.items()}
    records["total_params"]["details"] = {"published": published}
    records["size_qlora_bnb_mb"].update(details={**bnb, "lora_bytes": trainable * 4},
                                        method_fields={"double_quant": double_quant})
    records["compression_ratio_bnb_layout"]["method_fields"] = {"double_quant": double_quant}
    records["lora_trainable_params_all_linear"]["details"] = {"r": lora["r"], "modules": len(facts.lora_modules),
                                                              "names": facts.lora_names}
    records["lora_trainable_percent_paper_names"].update(
        details={"targets": list(paper_targets), "trainable_params": seven.trainable_params if seven else None,
                 "stopped": seven_error, "linear_layers": facts.linear_names},
        method_fields={"targets": ", ".join(paper_targets)})
    for name, state in (("training_state_full_gb", full_state), ("training_state_qlora_gb", qlora_state)):
        records[name]["details"] = {"bytes": state["parameters_and_states"]}
    records["training_state_full_gb"]["method_fields"] = {"optim": full_optim, "weights_dtype": full_weights_dtype}
    records["training_state_qlora_gb"]["method_fields"] = {"optim": qlora_optim}
    for record in records.values():  # the rank every method text names
        record["method_fields"] = {"r": lora["r"], **record.get("method_fields", {})}
    return records
