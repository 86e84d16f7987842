"""The base model both variants start from: pretrained here, from the hub, from disk, or random."""
from __future__ import annotations

import torch

from qrepro.model.causal_lm import build_config, load_pretrained, random_model
from qrepro.runtime import latest_checkpoint, seed_everything, set_threads


class ArchitectureMismatchError(ValueError):
    pass


def config_value(model_config, key: str):
    """A declared architecture key as the loaded config holds it (transformers 5 keeps rope_theta and the rope scaling
    in rope_parameters)."""
    if key == "model_type":
        return model_config.model_type
    rope = getattr(model_config, "rope_parameters", None) or {}
    if key == "rope_theta":
        return rope.get("rope_theta", getattr(model_config, "rope_theta", None))
    if key == "rope_scaling":
        return {k: v for k, v in rope.items() if k != "rope_theta"} if rope.get("rope_type", "default") != "default" \
            else None
    return getattr(model_config, key, None)


def check_architecture(model_config, declared: dict) -> None:
    """A downloaded model's config must match every key of the architecture the profile declares."""
    wrong = {}
    for key, value in declared.items():
        if key == "vocab_size" and value is None:
            continue
        found = config_value(model_config, key)
        if key == "rope_scaling" and value is not None and found is not None:
            found = {k: found.get(k) for k in value}  # the declared fields; transformers adds its defaults
        if found != value:
            wrong[key] = (value, found)
    if wrong:
        lines = ", ".join(f"{k}: config says {d}, model has {m}" for k, (d, m) in wrong.items())
        raise ArchitectureMismatchError(f"model.architecture does not match the loaded model ({lines})")


def pretrain(tokenizer, tokenized_dir: str, arch: dict, pretrain_cfg: dict, seed: int, precision: str,
             cuda: bool, threads: int, work_dir: str):
    """A small model of the declared family (architecture.model_type) trained from scratch on the packed
    pretraining portion."""
    from datasets import load_from_disk
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    set_threads(threads)
    seed_everything(seed)
    config = build_config(arch, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    model = random_model(config, seed)
    args = TrainingArguments(
        output_dir=work_dir, max_steps=pretrain_cfg["max_steps"],
        per_device_train_batch_size=pretrain_cfg["batch_size"], learning_rate=pretrain_cfg["learning_rate"],
        warmup_steps=pretrain_cfg["warmup_steps"], lr_scheduler_type="cosine", weight_decay=0.01,
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=not cuda, save_strategy="steps",
        save_steps=pretrain_cfg["save_steps"], save_total_limit=1, logging_steps=pretrain_cfg["logging_steps"],
        report_to="none", seed=seed, data_seed=seed, disable_tqdm=True, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=load_from_disk(tokenized_dir)["train"],
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
    trainer.train(resume_from_checkpoint=latest_checkpoint(work_dir))
    return trainer.model, trainer.state.log_history


def from_hub_or_disk(path_or_id: str, revision: str | None, declared: dict | None, dtype: str):
    model = load_pretrained(path_or_id, revision=revision, dtype=getattr(torch, dtype))
    if declared:
        check_architecture(model.config, declared)
    return model


def random_weights(arch: dict, vocab_size: int, seed: int, bos_token_id: int = 1, eos_token_id: int = 2):
    """The declared architecture with random weights (speed, memory and MFU runs without the hub)."""
    return random_model(build_config(arch, vocab_size, bos_token_id, eos_token_id), seed)
