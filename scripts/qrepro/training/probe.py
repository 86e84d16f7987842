"""A few optimizer steps of one variant on random data: peak memory, step time and MFU at a given scale.

Used by the `memory` rule (paper architecture on this CPU) and by bench/gpu_check.py (on a CUDA GPU):
the same code builds the variant the way a real run does (variants.build), then trains with the Trainer.
"""
from __future__ import annotations

import time

import torch

from qrepro.training.memory import PeakMemory
from qrepro.training.timing import StepTimer, step_time_summary
from qrepro.training.variants import build


def random_batches(vocab_size: int, count: int, seq_len: int, seed: int):
    from datasets import Dataset
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab_size, (count, seq_len), generator=generator).tolist()
    return Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * seq_len] * count, "labels": ids})


def run_probe(base_dir: str, variant: str, hp: dict, precision: str, cuda: bool, steps: int, warmup_steps: int,
              seq_len: int, seed: int, work_dir: str, outlier_multiple: float) -> dict:
    """`steps` optimizer steps of `variant` built as a real run builds it; returns the median step time after
    `warmup_steps` (StepTimer: data loading included) and the peak memory of trainer.train() (PeakMemory)."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    start = time.perf_counter()
    model = build(variant, base_dir, hp, precision, cuda)
    load_s = time.perf_counter() - start
    timer = StepTimer(cuda)
    sequences = hp["batch_size"] * hp["gradient_accumulation_steps"]
    args = TrainingArguments(
        output_dir=work_dir, max_steps=steps, per_device_train_batch_size=hp["batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"], learning_rate=hp["learning_rate"],
        optim=hp["optim"], bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=not cuda,
        save_strategy="no", eval_strategy="no",
        report_to="none", disable_tqdm=True, logging_steps=1, max_grad_norm=0.0, seed=seed)
    trainer = Trainer(model=model, args=args, data_collator=default_data_collator, callbacks=[timer],
                      train_dataset=random_batches(model.config.vocab_size, sequences * steps, seq_len, seed))
    memory = PeakMemory(cuda)
    with memory:
        timer.start()
        trainer.train()
    step_time = step_time_summary(timer.durations, warmup_steps, outlier_multiple)
    step_time.pop("timed_step_durations_s")  # step_times_s has them all
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"variant": variant, "precision": precision, "steps": steps, "sequences_per_step": sequences,
            "seq_len": seq_len, "step_times_s": timer.step_times(), "step_time": step_time,
            "step_time_s": step_time["median_s"], "tokens_per_s": sequences * seq_len / step_time["median_s"],
            "load_s": load_s, "peak_memory_mb": memory.mb, "memory": memory.details,
            "gradient_checkpointing": hp["gradient_checkpointing"],
            "final_loss": losses[-1] if losses else None}
