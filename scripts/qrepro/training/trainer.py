"""Trainer set-up shared by pretraining and both fine-tuning variants."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pandas as pd
import torch
from transformers import TrainerCallback, TrainingArguments

from qrepro.hardware import resolve_precision

LOG_COLUMNS = ["step", "epoch", "loss", "learning_rate", "grad_norm", "eval_loss"]


class StepTimer(TrainerCallback):
    """Time of every optimizer step, data loading included, evaluation, logging and checkpoint saves excluded.

    A step's time runs from the end of the previous step's bookkeeping (the latest of on_train_begin,
    on_step_end, on_log, on_evaluate, on_save) to its own on_step_end; the Trainer fetches a step's
    micro-batches before on_step_begin, so data loading falls inside. On CUDA each mark synchronizes, so
    queued kernels are charged to the step that launched them.

    Durations and the wall clock spent so far are stored in every checkpoint (timing.json), so a job that
    resumes from a checkpoint reports the steps and time of the whole run, not only its own process.
    """

    FILE = "timing.json"

    def __init__(self, cuda: bool = False, memory: "PeakMemory | None" = None, process: dict | None = None):
        self.cuda = cuda
        self.memory = memory                    # its peak so far is stored with each checkpoint
        self.process = process or {}            # what this process reports about itself (e.g. that it ran alone)
        self.durations: dict[int, float] = {}   # global step -> seconds
        self.evaluations: list[int] = []        # global steps after which an evaluation ran
        self.saves: list[int] = []              # global steps at which a checkpoint was saved
        self.earlier: list[dict] = []           # what earlier processes reported, up to the resumed checkpoint
        self.prior_wall_s = 0.0                 # wall clock of earlier processes, up to the resumed checkpoint
        self.resumed_from: str | None = None
        self._train_start: float | None = None
        self._mark: float | None = None

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def resume(self, checkpoint: str | None) -> None:
        """Take over the durations, wall clock and process reports recorded in the checkpoint a run resumes from."""
        self.resumed_from = checkpoint
        if checkpoint is None:
            return
        path = Path(checkpoint) / self.FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: this checkpoint was not written by this pipeline's "
                                    "StepTimer, so its time cannot be counted; delete the checkpoint folder")
        saved = json.loads(path.read_text())
        self.durations = {int(step): seconds for step, seconds in saved["durations"].items()}
        self.evaluations, self.saves = list(saved["evaluations"]), list(saved["saves"])
        self.earlier = list(saved["processes"])
        self.prior_wall_s = saved["wall_s"]

    def start(self) -> None:
        """Called right before trainer.train(): the paper-protocol wall clock starts here."""
        self._train_start = time.perf_counter()

    def wall_s(self) -> float:
        """Wall clock of the whole run so far: earlier processes up to their checkpoint, plus this one."""
        return self.prior_wall_s + (time.perf_counter() - self._train_start)

    def processes(self) -> list[dict]:
        """One report per process that contributed steps: earlier ones, then this one (its memory peak so far)."""
        this = dict(self.process)
        if self.memory is not None:
            this["peak_memory_mb"] = self.memory.current_mb()
        return self.earlier + [this]

    def _set_mark(self, *args, **kwargs):
        self._mark = self._now()

    on_train_begin = on_log = _set_mark

    def on_evaluate(self, args, state, control, **kwargs):
        self.evaluations.append(state.global_step)
        self._set_mark()

    def on_step_end(self, args, state, control, **kwargs):
        now = self._now()
        if self._mark is not None:
            self.durations[state.global_step] = now - self._mark
        self._mark = now

    def on_save(self, args, state, control, **kwargs):
        self.saves.append(state.global_step)
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            payload = {"durations": {str(k): v for k, v in sorted(self.durations.items())}, "wall_s": self.wall_s(),
                       "global_step": state.global_step, "evaluations": self.evaluations, "saves": self.saves,
                       "processes": self.processes()}
            (folder / self.FILE).write_text(json.dumps(payload, indent=1))
        self._mark = self._now()

    def step_times(self) -> list[float]:
        return [self.durations[step] for step in sorted(self.durations)]


class PaperEvaluationSchedule(TrainerCallback):
    """Evaluate every eval_steps, and not again at the last step.

    transformers (5.x) adds an evaluation at the final step when eval_steps does not divide max_steps; the
    paper's run (eval every 200 of 500 steps) evaluated twice, and its training time includes two passes."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps and state.eval_steps and state.global_step % state.eval_steps:
            control.should_evaluate = False
        return control


def step_time_summary(durations: dict[int, float], warmup_steps: int) -> dict:
    """The one statistic for a step time: the median over the steps after the first `warmup_steps`, with its
    spread (10th and 90th percentiles, min, max)."""
    import numpy as np

    timed = [durations[step] for step in sorted(durations) if step > warmup_steps]
    if not timed:
        raise ValueError(f"no step was timed after the first {warmup_steps} warm-up steps "
                         f"({len(durations)} steps in all); lower the warm-up or train longer")
    values = np.asarray(timed)
    return {"median_s": float(np.median(values)), "p10_s": float(np.percentile(values, 10)),
            "p90_s": float(np.percentile(values, 90)), "min_s": float(values.min()), "max_s": float(values.max()),
            "steps_timed": len(timed), "warmup_steps_excluded": warmup_steps, "steps_recorded": len(durations)}


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
        # gradient checkpointing is set up on the model when it is built (finetune.build), as the paper's
        # notebook did for QLoRA through prepare_model_for_kbit_training; the Trainer must not redo it its own way
        gradient_checkpointing=False,
    )


def latest_checkpoint(output_dir: str | os.PathLike, last_file: str = "trainer_state.json") -> str | None:
    """The newest checkpoint whose last-written file exists: one a killed process left half written is skipped."""
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    complete = [c for c in checkpoints if (c / "trainer_state.json").exists() and (c / last_file).exists()]
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


class PeakMemory:
    """Peak memory while the block runs.

    CUDA: torch.cuda.max_memory_allocated, the caching allocator's peak of live tensors (model weights
    included); details also give its rise above the allocation at the start of the block.
    CPU: the process's resident set size, sampled every 10 ms; the value is the peak above the RSS at the
    start of the block (the baseline: interpreter, libraries and the loaded model), so the Python runtime and
    model loading do not count. The CPU has no allocator-level peak to read, so none is reported.
    """

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.baseline_bytes = 0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._done = False

    def _rss(self) -> int:
        import psutil
        return psutil.Process().memory_info().rss

    def _sample(self):
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._rss())
            self._stop.wait(0.01)

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.baseline_bytes = torch.cuda.memory_allocated()
        else:
            self.baseline_bytes = self.peak_bytes = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, self._rss())
        self._done = True
        return False

    @property
    def mb(self) -> float:
        """The reported figure: the allocator's peak on CUDA, the peak RSS above the baseline on CPU."""
        return (self.peak_bytes if self.cuda else self.peak_bytes - self.baseline_bytes) / 1024 ** 2

    def current_mb(self) -> float:
        """The reported figure so far: while the block runs (for checkpoints), and its final value after it."""
        if self._done:
            return self.mb
        if self.cuda:
            return torch.cuda.max_memory_allocated() / 1024 ** 2
        return (max(self.peak_bytes, self._rss()) - self.baseline_bytes) / 1024 ** 2

    @property
    def details(self) -> dict:
        return {"baseline_mb": self.baseline_bytes / 1024 ** 2, "peak_mb": self.peak_bytes / 1024 ** 2,
                "peak_above_baseline_mb": (self.peak_bytes - self.baseline_bytes) / 1024 ** 2,
                "source": "torch.cuda.max_memory_allocated" if self.cuda else "process RSS (psutil), 10 ms sampling"}


def device_and_precision(requested: str) -> tuple[bool, str]:
    cuda = torch.cuda.is_available()
    return cuda, resolve_precision(requested, cuda)
