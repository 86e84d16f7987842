"""One fine-tuning job, run in the Snakemake job's process or, with training.num_processes > 1,
under `accelerate launch` on several GPUs (the Trainer then runs data-parallel; rank 0 writes results).

`job` is a qrepro.training.spec.FinetuneJob: plain parameters that scripts/finetune.py builds from the Snakemake
job, written as JSON for the processes that `accelerate launch` starts.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qrepro import SCRIPTS_DIR
from qrepro.data.tokenizer import finish
from qrepro import uncertainty
from qrepro.dependencies import library_files
from qrepro.machine_load import MachineLoad, combined, redo_while_loaded
from qrepro.metrics_io import write_metrics
from qrepro.model.causal_lm import count_parameters
from qrepro.model.quant import cpu_4bit_kernel
from qrepro.runlog import alone_evidence, package_versions
from qrepro.runtime import claim_checkpoint_dir, device_and_precision, fingerprint, seed_everything, set_threads
from qrepro.training import resources, variants
from qrepro.training.memory import PeakMemory
from qrepro.training.spec import FinetuneJob
from qrepro.training.timing import StepTimer, step_time_summary
from qrepro.training.trainer import (PaperEvaluationSchedule, final_train_loss, first_train_loss, log_history_frame,
                                     train, training_arguments)


def accelerate_command(num_processes: int, spec_path: str) -> list[str]:
    """The command that re-runs this job as num_processes data-parallel processes (no shell, list arguments):
    accelerate's multi-process launcher (torch.distributed.run), one process per GPU on CUDA; on CPU the Trainer
    (use_cpu) joins them with the gloo backend."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "-m", "qrepro.training.job", spec_path]


def world_size() -> int:
    """Processes training together: set by the launcher (torch.distributed.run), 1 in the Snakemake job itself."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def gather_reports(report: dict) -> list[dict]:
    """Every rank's report of itself, in rank order (one list on every rank)."""
    if world_size() == 1:
        return [report]
    import torch.distributed as dist

    reports = [None] * dist.get_world_size()
    dist.all_gather_object(reports, report)
    return reports


def job_code(scripts_dir: Path = SCRIPTS_DIR) -> list[str]:
    """Every file of code the finetune job runs: scripts/finetune.py and the library files it imports, transitively
    (qrepro.dependencies, the same walk that makes them the rule's inputs)."""
    script = scripts_dir / "finetune.py"
    root = scripts_dir.parent
    return [str(script)] + [str(root / f) for f in library_files(script, scripts_dir, root)]


def claim_checkpoints(job: FinetuneJob, precision: str) -> None:
    """Resume only checkpoints written by this job: the same settings, input bytes, code (job_code) and package
    versions (see runtime.claim_checkpoint_dir). How step times are summarised is not part of it."""
    p = job.params
    shared = {k: v for k, v in p.shared.items() if k != "step_time_warmup"}
    claim_checkpoint_dir(p.checkpoint_dir, fingerprint(
        {"variant": job.variant, "hp": p.hp, "shared": shared, "seed": p.seed, "precision": precision,
         "packages": package_versions()},
        [job.input.base_model, job.input.tokenized, *job_code()]))


def launch(job: FinetuneJob) -> None:
    """Run here, or hand the same job to `accelerate launch` when several processes are asked for."""
    num_processes = job.params.shared["num_processes"]
    if num_processes == 1:
        return run(job)
    claim_checkpoints(job, device_and_precision(job.params.shared["precision"])[1])
    spec = Path(job.params.checkpoint_dir) / "job.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    job.to_json(spec)
    # the workers import the installed package (pip install -e .): `-m qrepro.training.job` needs no path set here
    subprocess.run(accelerate_command(num_processes, str(spec)), check=True)


def rank_zero_view(value):
    """Rank 0's value on every rank (one process: the value itself): so that all ranks decide a rerun alike."""
    if world_size() == 1:
        return value
    import torch.distributed as dist

    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def fresh_start(checkpoint_dir: str) -> None:
    """Remove a discarded attempt's checkpoints, so that the next attempt trains from the start, not resumes it."""
    import shutil

    if int(os.environ.get("RANK", "0")) == 0:
        for checkpoint in Path(checkpoint_dir).glob("checkpoint-*"):
            shutil.rmtree(checkpoint)
    if world_size() > 1:
        import torch.distributed as dist

        dist.barrier()


@dataclass
class Attempt:
    """One training of the job from its start (or its resumed checkpoint), and what was observed meanwhile."""
    trainer: Any
    model: Any
    timer: StepTimer
    memory: PeakMemory
    run_times: dict
    this_run: list[dict]
    observed: dict


def train_once(job: FinetuneJob, setup: dict, attempt: int) -> tuple[Attempt, dict, dict]:
    """Train once from the same start (the base model, the seed; a later attempt after fresh_start), observing the
    machine meanwhile: redo_while_loaded's work. Returns the attempt, its observation and its values."""
    from transformers import DataCollatorForLanguageModeling, Trainer

    p, inp = job.params, job.input
    processes = world_size()
    if attempt > 1:
        fresh_start(p.checkpoint_dir)
    seed_everything(p.seed)
    model = variants.build(job.variant, inp.base_model, p.hp, setup["precision"], setup["cuda"])
    args = training_arguments(p.checkpoint_dir, p.hp, p.shared, setup["precision"], setup["cuda"], p.seed, processes)
    memory = PeakMemory(setup["cuda"])
    rank = int(os.environ.get("RANK", "0"))
    threshold = p.timing["outside_load_cores"]
    load = MachineLoad()
    # what a checkpoint keeps of this process, for a run resumed from it: with one process, the machine's load so
    # far too (with several, only rank 0 reports, and the other ranks' CPU time is not known to it)
    timer = StepTimer(setup["cuda"], memory, lambda: {"rank": rank, "threads": job.threads // processes,
                                                      **alone_evidence(job.threads, job.scheduler_cores),
                                                      **({"observed_load": load.so_far(threshold)}
                                                         if processes == 1 else {})})
    trainer = Trainer(model=model, args=args, train_dataset=setup["train"], eval_dataset=setup["eval"],
                      data_collator=DataCollatorForLanguageModeling(setup["tokenizer"], mlm=False),
                      callbacks=[timer, PaperEvaluationSchedule()])
    with load:
        run_times = train(trainer, timer, memory)
    print(f"trained {job.variant} (attempt {attempt}): {run_times}")
    # what every rank reports about itself (its memory peak, that it ran alone, its CPU time, its own step times):
    # rank 0 writes it
    rank_steps = step_time_summary(timer.durations, p.shared["step_time_warmup"], p.timing["step_outlier_multiple"],
                                   tuple(timer.restart_steps)) \
        if processes > 1 else None
    if rank_steps:
        rank_steps.pop("timed_step_durations_s")  # rank 0's are in step_time_s; each rank keeps its summary
    this_run = gather_reports({**timer.processes()[-1], "cpu_s": load.process_cpu_s(), "step_time": rank_steps})
    # what the machine did meanwhile (this process's part of the run): every rank's CPU time counts as the job's
    observed = load.report(threshold, timed_cpu_s=sum(r["cpu_s"] for r in this_run), timed_processes=len(this_run))
    # a resumed run: the earlier processes' observations up to their checkpoint count too
    observed = rank_zero_view(combined([proc["observed_load"] for proc in timer.earlier if "observed_load" in proc]
                                       + [observed], threshold))
    median = step_time_summary(timer.durations, p.shared["step_time_warmup"], p.timing["step_outlier_multiple"],
                               tuple(timer.restart_steps))["median_s"]
    values = {"train_time_s": run_times["wall_s"], "step_time_s": median, "steps": trainer.state.global_step,
              "resumed_from": run_times["resumed_from"]}
    return Attempt(trainer, model, timer, memory, run_times, this_run, observed), observed, values


def run(job: FinetuneJob) -> None:
    """The job in four steps: prepare, train (again while the machine was loaded), save, write the metric files."""
    setup = prepare(job)
    # outside load above the threshold: train again from the same start, up to timing.reruns more times; the kept
    # (last) attempt's model is the one saved, and every attempt's observation stays in the files
    kept, reruns = redo_while_loaded(lambda attempt: train_once(job, setup, attempt), job.params.timing,
                                     plant=int(os.environ.get("RANK", "0")) == 0)
    if not kept.trainer.is_world_process_zero():
        return  # under accelerate launch, only rank 0 writes results
    save_outputs(job, kept)
    write_metrics(job.params.metrics, training_records(job, kept, reruns, setup["cuda"]))


def prepare(job: FinetuneJob) -> dict:
    """Threads, device and precision, tokenizer and data; claim the checkpoints; refuse a job that cannot fit in
    memory or would not run alone. Returns what every attempt trains with."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    p, inp = job.params, job.input
    set_threads(job.threads // world_size())  # the job's cores, shared by its processes
    cuda, precision = device_and_precision(p.shared["precision"])
    data = load_from_disk(inp.tokenized)
    eval_data = data["validation"]
    if p.shared["eval_max_samples"]:
        eval_data = eval_data.select(range(min(p.shared["eval_max_samples"], eval_data.num_rows)))
    if "LOCAL_RANK" not in os.environ:  # under accelerate launch the parent process already claimed them
        claim_checkpoints(job, precision)
    estimate = resources.estimate_for_job(inp.base_model, job.variant, p.hp, p.max_length)
    resources.guard(estimate, *resources.available_bytes(cuda), what=f"fine-tuning {job.variant}")
    print(f"memory estimate: {estimate}")
    alone_evidence(job.threads, job.scheduler_cores)  # refuses at once a local job that would not run alone
    return {"cuda": cuda, "precision": precision, "tokenizer": finish(AutoTokenizer.from_pretrained(inp.tokenizer)),
            "train": data["train"], "eval": eval_data}


def save_outputs(job: FinetuneJob, kept: Attempt) -> None:
    """The trained model (full) or adapter (QLoRA), the loss curve, and the hyperparameters as they ran."""
    out = job.output
    variants.save_model(kept.trainer.model, str(Path(out.weights).parent))
    log_history_frame(kept.trainer.state.log_history).to_csv(out.log_history, index=False)
    variants.write_json(out.hyperparameters, variants.resolved_hyperparameters(job.variant, kept.trainer, kept.model))


def training_records(job: FinetuneJob, kept: Attempt, reruns: dict, cuda: bool) -> dict:
    """The finetune job's metric files: parameters, times (with what the machine did meanwhile), losses, memory."""
    p, inp = job.params, job.input
    trainer, timer, run_times, observed = kept.trainer, kept.timer, kept.run_times, kept.observed
    history = trainer.state.log_history
    total, trainable = count_parameters(kept.model)
    steps = trainer.state.global_step
    if len(timer.durations) != steps:
        raise RuntimeError(f"{len(timer.durations)} step times for {steps} optimizer steps: a step went untimed")
    outlier_multiple = p.timing["step_outlier_multiple"]
    step_time = step_time_summary(timer.durations, p.shared["step_time_warmup"], outlier_multiple,
                                  tuple(timer.restart_steps))
    durations = step_time.pop("timed_step_durations_s")
    step_interval, step_bootstrap = uncertainty.median_bootstrap(
        durations, "optimizer step", "timed_step_durations_s", p.bootstrap, "timed optimizer steps",
        block=uncertainty.block_length(len(durations)))
    # earlier processes (up to a resumed checkpoint), then every rank of this run
    reports = timer.earlier + [{k: v for k, v in report.items() if v is not None} for report in kept.this_run]
    # every process that contributed steps must have run alone (runlog.alone_evidence): the scheduler's guarantee;
    # observed_load: what the machine did, which no scheduler guarantees; attempts: every training of this job
    alone = {"ran_alone": all(proc["ran_alone"] for proc in reports), "processes": reports, "observed_load": observed,
             **reruns}
    contaminated = reruns["contaminated"]
    rerun_fields = {"attempts": len(reruns["attempts"]), "reruns_allowed": reruns["reruns_allowed"], "training": True,
                    "threshold": p.timing["outside_load_cores"], "contaminated": contaminated}
    sources = [inp.base_model, inp.tokenizer, inp.tokenized]
    kernel = cpu_4bit_kernel(cuda)  # what bitsandbytes decided in this process about its CPU 4-bit matmul
    return {
        "total_params": dict(value=total, inputs=[inp.base_model]),
        "trainable_params": dict(value=trainable, inputs=[inp.base_model]),
        "trainable_percent": dict(value=100.0 * trainable / total, inputs=[inp.base_model]),
        "train_time_s": dict(value=run_times["wall_s"], inputs=sources, contaminated=contaminated,
                             details={**run_times, **alone, "step_outliers": step_time["outliers"],
                                      "step_outlier_excess_s": step_time["outlier_excess_s"]},
                             method_fields={"outside_load": observed["outside_load_observed"],
                                            "outside_cores": observed["outside_cores_mean"],
                                            "outliers": step_time["outlier_count"],
                                            "outlier_multiple": outlier_multiple,
                                            "outlier_excess_s": step_time["outlier_excess_s"], **rerun_fields}),
        "time_per_step_s": dict(value=run_times["wall_s"] / steps, inputs=sources, contaminated=contaminated,
                                details={"steps": steps, **alone}, method_fields=rerun_fields),
        "step_time_s": dict(value=step_time["median_s"], inputs=sources, interval=step_interval,
                            contaminated=contaminated,
                            details={**step_time, **alone, "bootstrap": step_bootstrap,
                                     "timed_step_durations_s": durations},
                            method_fields={"warmup": step_time["warmup_steps_excluded"], "steps": steps,
                                           "restarts": step_time["restart_steps_excluded"],
                                           "outlier_multiple": outlier_multiple, **rerun_fields}),
        "train_steps": dict(value=steps, inputs=sources),
        "train_loss_first": dict(value=first_train_loss(history), inputs=sources),
        "train_loss_final": dict(value=final_train_loss(history), inputs=sources),
        "precision": dict(value=variants.precision_that_ran(trainer), inputs=[]),
        "cpu_4bit_kernel": dict(value=kernel["status"], inputs=[], details=kernel),
        "peak_train_memory_mb": dict(value=max(proc["peak_memory_mb"] for proc in reports), inputs=sources,
                                     method_fields={"cuda": cuda}, details={**kept.memory.details, **alone}),
    }


if __name__ == "__main__":  # the worker entry under accelerate launch
    from qrepro.runlog import log_to
    worker_job = FinetuneJob.from_json(sys.argv[1])
    rank = os.environ.get("RANK", "0")
    with log_to(f"{worker_job.log}.rank{rank}"):
        run(worker_job)
