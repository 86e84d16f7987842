"""The base model both variants start from: pretrained here, from the hub, from disk, or random."""
from __future__ import annotations

import torch

from qrepro.model.llama import llama_config, load_pretrained, random_model
from qrepro.runtime import latest_checkpoint, seed_everything, set_threads

STRUCTURAL_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                   "intermediate_size", "tie_word_embeddings")


class ArchitectureMismatchError(ValueError):
    pass


def check_architecture(model_config, declared: dict) -> None:
    """A downloaded model's config must match the architecture the profile declares."""
    keys = STRUCTURAL_KEYS + (("vocab_size",) if declared.get("vocab_size") else ())
    wrong = {key: (declared[key], getattr(model_config, key, None)) for key in keys
             if getattr(model_config, key, None) != declared[key]}
    if wrong:
        lines = ", ".join(f"{k}: config says {d}, model has {m}" for k, (d, m) in wrong.items())
        raise ArchitectureMismatchError(f"model.architecture does not match the loaded model ({lines})")


def pretrain(tokenizer, tokenized_dir: str, arch: dict, pretrain_cfg: dict, seed: int, precision: str,
             cuda: bool, threads: int, work_dir: str):
    """A small LlamaForCausalLM trained from scratch on the packed pretraining portion."""
    from datasets import load_from_disk
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    set_threads(threads)
    seed_everything(seed)
    config = llama_config(arch, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
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
    return random_model(llama_config(arch, vocab_size, bos_token_id, eos_token_id), seed)
