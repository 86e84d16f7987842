"""The timing and memory instruments against known workloads: StepTimer, step_time_summary, PeakMemory, MFU."""
import json
import resource
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import PAPER
from qrepro.machine_load import MachineLoad
from qrepro.evaluation.records import mfu_records, paper_protocol_peak
from qrepro.training.memory import PeakMemory
from qrepro.training.timing import StepTimer, step_time_summary



class FakeClock:
    """A clock that moves only when told: the timer's arithmetic is checked exactly, whatever the machine's load."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _drive(timer, output_dir, steps, load_s, work_s, eval_s, eval_every, save_every=0, first_step=0):
    """Call the StepTimer as transformers' Trainer loop does (trainer.py _inner_training_loop): fetch a step's
    batches, on_step_begin, forward/backward/optimizer, on_step_end, then log / evaluate / save. Time passes on the
    timer's FakeClock."""
    clock = timer.clock
    args = SimpleNamespace(output_dir=str(output_dir))
    state = SimpleNamespace(global_step=first_step)
    timer.on_train_begin(args, state, None)
    for _ in range(steps):
        clock.advance(load_s)                 # data loading, before on_step_begin
        timer.on_step_begin(args, state, None)
        clock.advance(work_s)                 # forward, backward, optimizer
        state.global_step += 1
        timer.on_step_end(args, state, None)
        if state.global_step % eval_every == 0:
            clock.advance(eval_s)             # an evaluation pass
            timer.on_log(args, state, None)
            timer.on_evaluate(args, state, None)
        if save_every and state.global_step % save_every == 0:
            (output_dir / f"checkpoint-{state.global_step}").mkdir()
            timer.on_save(args, state, None)
    return state


def test_step_time_includes_data_loading_and_excludes_evaluation(tmp_path):
    timer = StepTimer(clock=FakeClock())
    timer.start()
    _drive(timer, tmp_path, steps=6, load_s=0.02, work_s=0.03, eval_s=0.2, eval_every=2)
    durations = timer.step_times()
    # every step: 0.02 s loading + 0.03 s work; the 0.2 s evaluations fall outside every step
    assert durations == pytest.approx([0.05] * 6)
    assert timer.wall_s() == pytest.approx(6 * 0.05 + 3 * 0.2)


def test_median_after_warmup_and_spread():
    durations = {1: 5.0, 2: 4.0, 3: 1.0, 4: 3.0, 5: 2.0, 6: 100.0}
    summary = step_time_summary(durations, warmup_steps=2, outlier_multiple=3)
    assert summary["median_s"] == 2.5 and summary["steps_timed"] == 4  # median of 1, 3, 2, 100
    assert summary["min_s"] == 1.0 and summary["max_s"] == 100.0
    with pytest.raises(ValueError, match="no step was timed after the first 6 warm-up steps"):
        step_time_summary(durations, warmup_steps=6, outlier_multiple=3)


def test_a_planted_slow_step_is_an_outlier_and_the_median_ignores_it():
    """300 steps of 0.50-0.60 s (p90 ~0.59 s) and, as when another process took the CPU, steps 120 and 121 at 5.9
    and 4.1 s; a warm-up step of 9 s is not timed, and a 1.2 s step (about 2x p90) stays under the 3x threshold."""
    rng = np.random.default_rng(0)
    durations = {step: float(rng.uniform(0.50, 0.60)) for step in range(1, 301)}
    durations.update({1: 9.0, 120: 5.9, 121: 4.1, 200: 1.2})
    summary = step_time_summary(durations, warmup_steps=1, outlier_multiple=3)
    assert [o["step"] for o in summary["outliers"]] == [120, 121] and summary["outlier_count"] == 2
    p90 = np.percentile([d for s, d in durations.items() if s > 1], 90)
    assert summary["outlier_threshold_s"] == pytest.approx(3 * p90)
    assert 0.54 < summary["median_s"] < 0.56  # the uniform's median, unmoved
    assert summary["outlier_excess_s"] == pytest.approx(5.9 + 4.1 - 2 * summary["median_s"])
    assert len(summary["timed_step_durations_s"]) == 299


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.mark.slow  # starts a busy process and reads the whole machine's CPU time: a loaded machine changes the result
def test_machine_load_tells_the_timed_work_from_another_process():
    """The timed block spins 0.6 s of CPU itself while a child process spins 1.5 s: the machine's CPU time outside
    the block's own is the child's (measured independently, RUSAGE_CHILDREN), give or take background noise."""
    child = "import time\nend = time.process_time() + 1.5\nwhile time.process_time() < end: pass"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with MachineLoad() as load:
        process = subprocess.Popen([sys.executable, "-c", child])
        _spin(0.6)
        process.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    report = load.report(threshold_cores=0.1)
    assert report["timed_cpu_s"] == pytest.approx(0.6, abs=0.15)
    assert child_cpu >= 1.4
    assert report["outside_cpu_s"] == pytest.approx(child_cpu, abs=0.4)
    assert report["outside_load_observed"] and report["outside_cores_mean"] > 0.5


@pytest.mark.slow  # needs a quiet machine: it reads the whole machine's CPU time
def test_machine_load_of_a_quiet_block_is_below_the_threshold():
    with MachineLoad() as load:
        _spin(1.0)
    report = load.report(threshold_cores=0.5)
    assert report["timed_cpu_s"] == pytest.approx(1.0, abs=0.15)
    assert report["outside_cores_mean"] < 0.5 and not report["outside_load_observed"]


def test_a_resumed_run_counts_the_time_and_steps_of_the_earlier_process(tmp_path):
    clock = FakeClock()
    first = StepTimer(process=lambda: {"ran_alone": True}, clock=clock)
    first.start()
    _drive(first, tmp_path, steps=4, load_s=0.0, work_s=0.02, eval_s=0.0, eval_every=100, save_every=2)
    saved = json.loads((tmp_path / "checkpoint-4" / "timing.json").read_text())
    assert sorted(int(s) for s in saved["durations"]) == [1, 2, 3, 4] and saved["wall_s"] == pytest.approx(4 * 0.02)
    assert saved["saves"] == [2, 4] and saved["processes"] == [{"ran_alone": True}]
    clock.advance(0.3)  # work after the checkpoint that a killed process loses: not counted

    second = StepTimer(process=lambda: {"ran_alone": False}, clock=clock)
    second.resume(str(tmp_path / "checkpoint-4"))
    second.start()
    _drive(second, tmp_path, steps=3, load_s=0.0, work_s=0.02, eval_s=0.0, eval_every=100, first_step=4)
    assert sorted(second.durations) == [1, 2, 3, 4, 5, 6, 7]
    assert second.prior_wall_s == saved["wall_s"]
    assert second.wall_s() == pytest.approx(saved["wall_s"] + 3 * 0.02)
    assert second.processes() == [{"ran_alone": True}, {"ran_alone": False}]  # each process reports for itself


def test_only_the_first_process_writes_a_checkpoints_timing(tmp_path):
    """Under several processes every rank saves into the same checkpoint folder: only world process zero writes
    timing.json, so a resume never inherits another rank's report."""
    (tmp_path / "checkpoint-2").mkdir()
    other_rank = StepTimer(process=lambda: {"rank": 1})
    other_rank.start()
    other_rank.on_save(SimpleNamespace(output_dir=str(tmp_path)),
                       SimpleNamespace(global_step=2, is_world_process_zero=False), None)
    assert not (tmp_path / "checkpoint-2" / "timing.json").exists()
    first = StepTimer(process=lambda: {"rank": 0})
    first.start()
    first.on_save(SimpleNamespace(output_dir=str(tmp_path)),
                  SimpleNamespace(global_step=2, is_world_process_zero=True), None)
    saved = json.loads((tmp_path / "checkpoint-2" / "timing.json").read_text())
    assert saved["processes"] == [{"rank": 0}]


def test_resuming_from_a_foreign_checkpoint_is_refused(tmp_path):
    (tmp_path / "checkpoint-7").mkdir()
    with pytest.raises(FileNotFoundError, match="timing.json is missing"):
        StepTimer().resume(str(tmp_path / "checkpoint-7"))


def test_peak_memory_on_cpu_is_what_the_block_allocates():
    size_mb = 256
    with PeakMemory(cuda=False) as memory:
        block = torch.ones(size_mb * 1024 * 1024 // 4, dtype=torch.float32)  # touched, so resident
        time.sleep(0.1)
        del block
    # the baseline (interpreter, torch) is excluded: the figure is the block's own allocation
    assert size_mb * 0.95 <= memory.mb <= size_mb * 1.15, memory.details
    assert memory.details["baseline_mb"] > 50


def test_mfu_both_ways_from_their_parts():
    p, t4 = PAPER, PAPER["notebook_t4_peak_tflops"]
    flops = {"paper": p["t7_flops_full"] * 1e12, "analytic": 9.0e12}
    records = mfu_records(flops, steps=p["t3_steps_full"], train_time=p["t9_time_full"], step_time=2.5, peak=65e12,
                          peak_method="spec", peak_details={"gpu": "Tesla T4"}, sources={"paper": [], "analytic": []},
                          t4_peak_tflops=t4)
    # the paper's protocol on a T4: its notebook's peak, and wall clock over 500 steps
    achieved = p["t7_flops_full"] * p["t3_steps_full"] / p["t9_time_full"]
    assert records["achieved_tflops_paper"]["value"] == pytest.approx(achieved)
    assert records["mfu_paper"]["value"] == pytest.approx(100 * achieved / t4)
    assert round(records["mfu_paper"]["value"], 2) == p["t8_mfu_full"]  # the paper's Table 8
    assert round(records["achieved_tflops_paper"]["value"], 2) == p["t8_achieved_full"]
    # the correct way: model FLOPs per median step against the device's own peak
    assert records["mfu_analytic"]["value"] == pytest.approx(100 * 9.0e12 / 2.5 / 65e12)
    assert paper_protocol_peak(989e12, {"gpu": "NVIDIA H200"}, t4)[0] == 989e12
    assert paper_protocol_peak(65e12, {"gpu": "Tesla T4"}, t4)[0] == t4 * 1e12


def test_step_times_in_a_real_trainer_include_loading_and_exclude_evaluation(tmp_path):
    """The same, driven by transformers' own loop: a collator that takes 0.1 s per micro-batch (2 per step) and an
    evaluation of 8 batches (0.8 s) every 3 steps; PaperEvaluationSchedule drops the extra one at the last step."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments, default_data_collator

    from qrepro.training.trainer import PaperEvaluationSchedule
    from tiny_models import tiny_model

    clock = FakeClock()

    def slow_collator(features):  # 0.1 s of loading per micro-batch, on the timer's clock
        clock.advance(0.1)
        return default_data_collator(features)

    model = tiny_model("llama", vocab=64, seed=0)
    ids = torch.randint(3, 64, (64, 16), generator=torch.Generator().manual_seed(0)).tolist()
    data = Dataset.from_dict({"input_ids": ids, "labels": ids})
    timer = StepTimer(clock=clock)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=2,
                             gradient_accumulation_steps=2, per_device_eval_batch_size=2, eval_strategy="steps",
                             eval_steps=3, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
                             logging_steps=1)
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data.select(range(16)),
                      data_collator=slow_collator, callbacks=[timer, PaperEvaluationSchedule()])
    timer.start()
    trainer.train()
    durations = timer.step_times()
    assert len(durations) == 8 and timer.evaluations == [3, 6]  # not again at step 8
    # two loads in each step, an 0.8 s evaluation out; the first step pays one load more: accelerate's data loader
    # (DataLoaderShard.__iter__) reads one batch ahead
    assert durations == pytest.approx([0.3] + [0.2] * 7)
    assert timer.wall_s() == pytest.approx(sum(durations) + 2 * 8 * 0.1)
