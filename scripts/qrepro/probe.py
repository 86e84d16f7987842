"""A few optimizer steps of one variant on random data: peak memory, step time and MFU at a given scale.

Used by the `memory` rule (paper architecture on this CPU) and by bench/gpu_check.py (on a CUDA GPU):
the same code builds the variant the way a real run does (finetune.build), then trains with the Trainer.
"""
from __future__ import annotations

import time

import torch

from . import finetune, training


def random_batches(vocab_size: int, count: int, seq_len: int, seed: int):
    from datasets import Dataset
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab_size, (count, seq_len), generator=generator).tolist()
    return Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * seq_len] * count, "labels": ids})


def run_probe(base_dir: str, variant: str, hp: dict, precision: str, cuda: bool, steps: int, seq_len: int,
              seed: int, work_dir: str) -> dict:
    from transformers import Trainer, TrainingArguments, default_data_collator

    start = time.perf_counter()
    model = finetune.build(variant, base_dir, hp, precision, cuda)
    load_s = time.perf_counter() - start
    timer = training.StepTimer()
    sequences = hp["batch_size"] * hp["gradient_accumulation_steps"]
    args = TrainingArguments(
        output_dir=work_dir, max_steps=steps, per_device_train_batch_size=hp["batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"], learning_rate=hp["learning_rate"],
        optim=hp["optim"], bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=not cuda,
        gradient_checkpointing=hp.get("gradient_checkpointing", False), save_strategy="no", eval_strategy="no",
        report_to="none", disable_tqdm=True, logging_steps=1, max_grad_norm=0.0, seed=seed)
    trainer = Trainer(model=model, args=args, data_collator=default_data_collator, callbacks=[timer],
                      train_dataset=random_batches(model.config.vocab_size, sequences * steps, seq_len, seed))
    memory = training.PeakMemory(cuda)
    with memory:
        trainer.train()
    # the first step includes one-off work (allocations, optimizer state); report the last when there are more
    step_s = timer.durations[-1]
    return {"variant": variant, "precision": precision, "steps": steps, "sequences_per_step": sequences,
            "seq_len": seq_len, "step_times_s": timer.durations, "step_time_s": step_s,
            "tokens_per_s": sequences * seq_len / step_s, "load_s": load_s, "peak_memory_mb": memory.mb,
            "peak_memory_method": memory.method,
            "process_peak_rss_mb_including_load": None if cuda else training.lifetime_peak_rss_mb(), "final_loss": trainer.state.log_history[-2].get("loss")
            if len(trainer.state.log_history) > 1 else None}
