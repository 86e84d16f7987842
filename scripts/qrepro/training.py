"""Trainer set-up shared by pretraining and both fine-tuning variants."""
from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import threading
import time
from pathlib import Path

import pandas as pd
import torch
from transformers import TrainerCallback, TrainingArguments

from .hardware import resolve_precision

LOG_COLUMNS = ["step", "epoch", "loss", "learning_rate", "grad_norm", "eval_loss"]


class StepTimer(TrainerCallback):
    """Pure optimizer-step time: from on_step_begin to on_step_end, so evaluation and checkpoint
    saves (which run after on_step_end) are excluded."""

    def __init__(self):
        self.durations: list[float] = []
        self._start = None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._start is not None:
            self.durations.append(time.perf_counter() - self._start)
            self._start = None


def set_threads(threads: int) -> None:
    torch.set_num_threads(max(1, threads))


def seed_everything(seed: int) -> None:
    from transformers import set_seed
    set_seed(seed, deterministic=True)


def training_arguments(output_dir: str, hp: dict, shared: dict, precision: str, cuda: bool,
                       seed: int) -> TrainingArguments:
    """The paper's Table 3 row for one variant, plus the shared schedule."""
    evaluate = shared["eval_steps"] > 0
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=1,
        max_steps=shared["max_steps"],
        per_device_train_batch_size=hp["batch_size"],
        per_device_eval_batch_size=hp["eval_batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"],
        learning_rate=hp["learning_rate"],
        warmup_steps=shared["warmup_steps"],
        optim=hp["optim"],
        max_grad_norm=shared["max_grad_norm"],
        weight_decay=0.0,
        lr_scheduler_type="linear",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not cuda,
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
        gradient_checkpointing=hp.get("gradient_checkpointing", False),
    )


def latest_checkpoint(output_dir: str | os.PathLike) -> str | None:
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    complete = [c for c in checkpoints if (c / "trainer_state.json").exists()]
    return str(complete[-1]) if complete else None


def fingerprint(settings: dict, paths: list[str]) -> str:
    """SHA-256 over the job's settings and the bytes of its input files."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for root in sorted(paths):
        files = [Path(root)] if Path(root).is_file() else sorted(f for f in Path(root).rglob("*") if f.is_file())
        for f in files:
            digest.update(str(f.relative_to(root) if f != Path(root) else f.name).encode())
            with open(f, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def claim_checkpoint_dir(checkpoint_dir: str, job_fingerprint: str) -> None:
    """Checkpoints are only resumed by the job that wrote them: same settings, same input bytes.
    A folder left by other settings or inputs is wiped, never resumed."""
    folder = Path(checkpoint_dir)
    stamp = folder / "fingerprint.txt"
    if folder.exists() and (not stamp.exists() or stamp.read_text().strip() != job_fingerprint):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(job_fingerprint + "\n")


def train(trainer, memory: PeakMemory) -> tuple[float, str | None, int]:
    """Run trainer.train() under a peak-memory monitor, resuming from the last complete checkpoint.

    Returns (wall seconds, checkpoint resumed from, optimizer steps run in this process)."""
    resume = latest_checkpoint(trainer.args.output_dir)
    first_step = 0
    if resume:
        first_step = json.loads((Path(resume) / "trainer_state.json").read_text())["global_step"]
    with memory:
        start = time.perf_counter()
        trainer.train(resume_from_checkpoint=resume)
        elapsed = time.perf_counter() - start
    return elapsed, resume, trainer.state.global_step - first_step


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


class PeakMemory:
    """Peak memory while the block runs: CUDA's allocator peak, or the process RSS sampled every 10 ms on CPU.

    Model loading before the block is excluded (it can briefly hold a 16-bit copy of the weights)."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.peak_bytes = 0
        self._stop = threading.Event()

    def _sample(self):
        import psutil
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)
            self._stop.wait(0.01)

    def __enter__(self):
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.peak_bytes = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
        return False

    @property
    def mb(self) -> float:
        return self.peak_bytes / 1024 ** 2

    @property
    def method(self) -> str:
        return ("torch.cuda.max_memory_allocated during trainer.train()" if self.cuda else
                "peak resident set size of the process during trainer.train(), sampled every 10 ms")


def lifetime_peak_rss_mb() -> float:
    """Peak RSS over the whole process, model loading included (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_and_precision(requested: str) -> tuple[bool, str]:
    cuda = torch.cuda.is_available()
    return cuda, resolve_precision(requested, cuda)
