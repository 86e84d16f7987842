"""Fine-tuning one variant: full (all weights) or QLoRA (NF4 base + LoRA adapters)."""
from __future__ import annotations

import json
from pathlib import Path

from qrepro.model.anatomy import check_lora_targets, lora_config
from qrepro.model.causal_lm import load_pretrained
from qrepro.model.quant import DTYPES, assert_quantized, bnb_config, disable_cpu_weight_repacking, require_bitsandbytes


def compute_dtype(quantization: dict, precision: str) -> str:
    """QLoRA's compute dtype: the training precision unless the config names one."""
    return precision if quantization["compute_dtype"] == "auto" else quantization["compute_dtype"]


def build_full(base_dir: str, weights_dtype: str, gradient_checkpointing: bool = False):
    model = load_pretrained(base_dir, dtype=DTYPES[weights_dtype])
    if gradient_checkpointing:  # transformers' default (non-reentrant), as TrainingArguments would enable it
        model.activation_checkpointing_enable()
    return model


def build_qlora(base_dir: str, quantization: dict, lora: dict, precision: str, cuda: bool,
                gradient_checkpointing: bool):
    from peft import get_peft_model, prepare_model_for_kbit_training

    require_bitsandbytes(cuda)
    dtype = compute_dtype(quantization, precision)
    model = load_pretrained(base_dir, dtype=DTYPES[dtype],
                            quantization_config=bnb_config(quantization["quant_type"],
                                                           quantization["double_quant"], dtype))
    assert_quantized(model)
    check_lora_targets(model, lora["target_modules"])
    # The paper's notebook: prepare_model_for_kbit_training with its default, use_gradient_checkpointing=True
    # (peft's reentrant checkpointing; the Trainer is not asked to enable it again).
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    model = get_peft_model(model, lora_config(lora))
    if not cuda:
        disable_cpu_weight_repacking(model)
    return model


def build(variant: str, base_dir: str, hp: dict, precision: str, cuda: bool):
    if variant == "full":
        return build_full(base_dir, hp["weights_dtype"], hp["gradient_checkpointing"])
    if variant == "qlora":
        return build_qlora(base_dir, hp["quantization"], hp["lora"], precision, cuda, hp["gradient_checkpointing"])
    raise ValueError(f"unknown variant {variant!r}: expected full or qlora")


MIXED_PRECISION = {"no": "fp32", "bf16": "bf16", "fp16": "fp16"}


def precision_that_ran(trainer) -> str:
    """The mixed precision the Trainer's accelerator applied (fp32 when none): what ran, whatever was asked."""
    return MIXED_PRECISION[str(trainer.accelerator.mixed_precision)]


def optimizer_that_ran(trainer) -> dict:
    """The optimizer object the Trainer stepped, and how its state was held after training: bitsandbytes turns
    paged_adamw_8bit into PagedAdamW8bit, whose state pages only on CUDA (and only for tensors of 100k elements or
    more); on CPU it falls back to ordinary tensors."""
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps the optimizer
    state = [t for per_param in optimizer.state.values() for key, t in per_param.items()
             if key != "step" and hasattr(t, "dtype") and t.dim() > 0]
    paged = sum(bool(getattr(t, "is_paged", False)) for t in state)
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in state})
    name = type(optimizer).__name__
    return {"optimizer_class": f"{type(optimizer).__module__}.{name}", "optimizer_state_tensors": len(state),
            "optimizer_paged_tensors": paged, "optimizer_state_dtypes": dtypes,
            "optimizer_ran": f"{name}, state {'/'.join(dtypes)}, {paged} of {len(state)} state tensors paged"}


def resolved_hyperparameters(variant: str, trainer, model) -> dict:
    """What actually ran (Tables 3 and 4), read back from the TrainingArguments, the optimizer the Trainer stepped,
    its accelerator's precision and the model."""
    args = trainer.args
    resolved = {
        "variant": variant,
        "num_train_epochs": args.num_train_epochs,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "per_device_eval_batch_size": args.per_device_eval_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,  # per process
        "processes": args.world_size,
        "global_batch": args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
        "max_steps": args.max_steps,
        "learning_rate": args.learning_rate,
        "optim": str(args.optim.value if hasattr(args.optim, "value") else args.optim),
        **optimizer_that_ran(trainer),
        "precision": precision_that_ran(trainer),
        "warmup_steps": args.warmup_steps,
        "max_grad_norm": args.max_grad_norm,
        "eval_steps": args.eval_steps,
        "save_steps": args.save_steps,
        "seed": args.seed,
        "gradient_checkpointing": bool(getattr(model, "is_activation_checkpointing", False)),
    }
    if variant == "qlora":
        peft_config = model.peft_config["default"]
        quant = model.base_model.model.config.quantization_config
        quant = quant.to_dict() if hasattr(quant, "to_dict") else dict(quant)
        resolved.update({
            "quant_type": quant["bnb_4bit_quant_type"],
            "double_quant": quant["bnb_4bit_use_double_quant"],
            "compute_dtype": str(quant["bnb_4bit_compute_dtype"]).replace("torch.", ""),
            "lora_r": peft_config.r,
            "lora_alpha": peft_config.lora_alpha,
            "lora_dropout": peft_config.lora_dropout,
            "lora_bias": peft_config.bias,
            "target_modules": sorted(peft_config.target_modules),  # as peft resolved them (all-linear: the names)
            "adapted_modules": len(model.targeted_module_names),
        })
    else:
        resolved["weights_dtype"] = str(next(model.parameters()).dtype).replace("torch.", "")
    return resolved


def save_model(model, out_dir: str) -> None:
    """full: the whole model as safetensors; qlora: the adapter weights plus adapter_config.json."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    # one unsharded file, so the rule can declare it (bigger than TinyLlama in fp32 still fits)
    model.save_pretrained(out_dir, safe_serialization=True, max_shard_size="100GB")


def write_json(path: str, payload: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")

