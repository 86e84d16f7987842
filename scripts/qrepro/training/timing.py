"""Step times of a training run: every optimizer step timed by a Trainer callback, summarised by one statistic."""
from __future__ import annotations

import json
import time
from pathlib import Path

from typing import TYPE_CHECKING, Callable

from transformers import TrainerCallback

if TYPE_CHECKING:
    from qrepro.training.memory import PeakMemory


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

    def __init__(self, cuda: bool = False, memory: "PeakMemory | None" = None,
                 process: "Callable[[], dict] | None" = None, clock: "Callable[[], float]" = time.perf_counter):
        self.cuda = cuda
        self.clock = clock                      # seconds, monotonic (tests pass a clock they advance themselves)
        self.memory = memory                    # its peak so far is stored with each checkpoint
        self.process = process or dict          # what this process reports about itself (e.g. that it ran alone),
                                                # asked when a checkpoint is saved and at the end: it covers the run so far
        self.durations: dict[int, float] = {}   # global step -> seconds
        self.evaluations: list[int] = []        # global steps after which an evaluation ran
        self.saves: list[int] = []              # global steps at which a checkpoint was saved
        self.earlier: list[dict] = []           # what earlier processes reported, up to the resumed checkpoint
        self.prior_wall_s = 0.0                 # wall clock of earlier processes, up to the resumed checkpoint
        self.resumed_from: str | None = None
        self.restart_steps: list[int] = []      # the first step of each process that resumed the run
        self._train_start: float | None = None
        self._mark: float | None = None

    def _now(self) -> float:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        return self.clock()

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
        # this process's first step is a warm-up of its own (step_time_summary leaves it out)
        self.restart_steps = list(saved.get("restart_steps", [])) + [saved["global_step"] + 1]

    def start(self) -> None:
        """Called right before trainer.train(): the paper-protocol wall clock starts here."""
        self._train_start = self.clock()

    def wall_s(self) -> float:
        """Wall clock of the whole run so far: earlier processes up to their checkpoint, plus this one."""
        return self.prior_wall_s + (self.clock() - self._train_start)

    def processes(self) -> list[dict]:
        """One report per process that contributed steps: earlier ones, then this one (its memory peak so far)."""
        this = dict(self.process())
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
        # one writer: under several processes every rank saves into the same folder (the last write would win)
        if folder.is_dir() and getattr(state, "is_world_process_zero", True):
            payload = {"durations": {str(k): v for k, v in sorted(self.durations.items())}, "wall_s": self.wall_s(),
                       "global_step": state.global_step, "evaluations": self.evaluations, "saves": self.saves,
                       "processes": self.processes(), "restart_steps": self.restart_steps}
            (folder / self.FILE).write_text(json.dumps(payload, indent=1))
        self._mark = self._now()

    def step_times(self) -> list[float]:
        return [self.durations[step] for step in sorted(self.durations)]


def step_time_summary(durations: dict[int, float], warmup_steps: int, outlier_multiple: float,
                      restart_steps: tuple[int, ...] = ()) -> dict:
    """The one statistic for a step time: the median over the steps after the first `warmup_steps`, with its
    spread (10th and 90th percentiles, min, max), every timed step's duration (for the median's bootstrap interval)
    and the outliers: timed steps longer than outlier_multiple x the 90th percentile (e.g. another process briefly
    took the CPU), listed by step; the median is robust to them, a total time is not. restart_steps: the first step
    of each process that resumed a run, a warm-up of its own (allocation, caches), left out like the first ones."""
    import numpy as np

    steps = [step for step in sorted(durations) if step > warmup_steps and step not in restart_steps]
    if not steps:
        raise ValueError(f"no step was timed after the first {warmup_steps} warm-up steps "
                         f"({len(durations)} steps in all); lower the warm-up or train longer")
    values = np.asarray([durations[step] for step in steps])
    p90 = float(np.percentile(values, 90))
    threshold = outlier_multiple * p90
    outliers = [{"step": step, "seconds": durations[step]} for step in steps if durations[step] > threshold]
    return {"median_s": float(np.median(values)), "p10_s": float(np.percentile(values, 10)),
            "p90_s": p90, "min_s": float(values.min()), "max_s": float(values.max()),
            "steps_timed": len(steps), "warmup_steps_excluded": warmup_steps, "steps_recorded": len(durations),
            "restart_steps_excluded": sorted(s for s in restart_steps if s > warmup_steps and s in durations),
            "outlier_multiple_of_p90": outlier_multiple, "outlier_threshold_s": threshold,
            "outliers": outliers, "outlier_count": len(outliers),
            "outlier_excess_s": float(sum(o["seconds"] - float(np.median(values)) for o in outliers)),
            "timed_step_durations_s": [float(v) for v in values]}
