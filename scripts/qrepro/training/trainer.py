"""The Trainer as both fine-tuning variants use it: the paper's TrainingArguments, its evaluation schedule, a
resumable training run, and the log history it leaves."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
from transformers import TrainerCallback, TrainingArguments

from qrepro.runtime import latest_checkpoint
from qrepro.training.memory import PeakMemory
from qrepro.training.timing import StepTimer

LOG_COLUMNS = ["step", "epoch", "loss", "learning_rate", "grad_norm", "eval_loss"]


class PaperEvaluationSchedule(TrainerCallback):
    """Evaluate every eval_steps, and not again at the last step.

    transformers (5.x) adds an evaluation at the final step when eval_steps does not divide max_steps; the
    paper's run (eval every 200 of 500 steps) evaluated twice, and its training time includes two passes."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps and state.eval_steps and state.global_step % state.eval_steps:
            control.should_evaluate = False
        return control


def training_arguments(output_dir: str, hp: dict, shared: dict, precision: str, cuda: bool,
                       seed: int, processes: int = 1) -> TrainingArguments:
    """The paper's Table 3 row for one variant, plus the shared schedule. With several data-parallel processes each
    accumulates 1/processes of the micro-batches, so an optimizer step sees the recipe's global batch
    (batch_size x gradient_accumulation_steps; config_checks refuses a count that does not divide it)."""
    evaluate = shared["eval_steps"] > 0
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=1,
        max_steps=shared["max_steps"],
        per_device_train_batch_size=hp["batch_size"],
        per_device_eval_batch_size=hp["eval_batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"] // processes,
        learning_rate=hp["learning_rate"],
        warmup_steps=shared["warmup_steps"],
        optim=hp["optim"],
        max_grad_norm=shared["max_grad_norm"],
        weight_decay=0.0,
        lr_scheduler_type="linear",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not cuda,
        ddp_backend=None if cuda or processes == 1 else "gloo",
        # every trainable parameter takes part in every step; with gradient checkpointing set up on the model (not
        # through these arguments) the Trainer would otherwise ask DDP to search for unused ones, which the
        # recomputing backward pass then marks ready twice
        ddp_find_unused_parameters=False if processes > 1 else None,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=shared["eval_steps"] if evaluate else None,
        save_strategy="steps",
        save_steps=shared["save_steps"],
        save_total_limit=2,
        logging_steps=shared["logging_steps"],
        report_to="none",
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        # gradient checkpointing is set up on the model when it is built (variants.build), as the paper's
        # notebook did for QLoRA through prepare_model_for_kbit_training; the Trainer must not redo it its own way
        gradient_checkpointing=False,
    )


def train(trainer, timer: StepTimer, memory: PeakMemory) -> dict:
    """Run trainer.train() under a peak-memory monitor, resuming from the last complete checkpoint.

    A checkpoint at max_steps is never resumed: the Trainer would run one step past it; the run starts over.
    Returns the paper-protocol wall clock of the whole run (earlier processes included, up to the checkpoint
    this one resumed from), the checkpoint resumed from and the optimizer steps run in this process."""
    output_dir = Path(trainer.args.output_dir)
    resume = latest_checkpoint(output_dir, StepTimer.FILE)  # StepTimer writes timing.json last
    first_step = json.loads((Path(resume) / "trainer_state.json").read_text())["global_step"] if resume else 0
    if first_step >= trainer.args.max_steps:
        print(f"{resume} is the finished run's last checkpoint: training again from the start")
        for checkpoint in output_dir.glob("checkpoint-*"):
            shutil.rmtree(checkpoint)
        resume, first_step = None, 0
    timer.resume(resume)
    if resume:
        print(f"resumed from {resume} (step {first_step})")
    with memory:
        timer.start()
        trainer.train(resume_from_checkpoint=resume)
        wall_s = timer.wall_s()
    return {"wall_s": wall_s, "resumed_from": resume, "steps_run_in_this_process": trainer.state.global_step - first_step,
            "wall_s_this_process": wall_s - timer.prior_wall_s, "wall_s_earlier_processes": timer.prior_wall_s,
            "evaluations_at_steps": timer.evaluations, "saves_at_steps": timer.saves}


def log_history_frame(log_history: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(log_history)
    for column in LOG_COLUMNS:
        if column not in frame:
            frame[column] = float("nan")
    return frame[LOG_COLUMNS + [c for c in frame.columns if c not in LOG_COLUMNS]]


def final_train_loss(log_history: list[dict]) -> float:
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    if not losses:
        raise RuntimeError("the Trainer logged no training loss; lower training.logging_steps")
    return float(losses[-1])


def first_train_loss(log_history: list[dict]) -> float:
    return float(next(entry["loss"] for entry in log_history if "loss" in entry))
