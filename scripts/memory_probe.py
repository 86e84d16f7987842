"""Rule memory_probe: peak training memory and step time of one variant at the configured architecture."""
from qrepro.machine_load import MachineLoad, redo_while_loaded
from qrepro.metrics_io import write_metrics
from qrepro.runlog import alone_evidence, log_to
from qrepro.runtime import device_and_precision, set_threads
from qrepro.training import resources
from qrepro.training.probe import run_probe

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
job = snakemake  # noqa: F821
variant = job.wildcards.variant
with log_to(job.log[0]):
    set_threads(job.threads)
    cuda, precision = device_and_precision(p.precision)
    hp = {**p.hp, "gradient_accumulation_steps": 1, "weights_dtype": p.weights_dtype}
    estimate = resources.estimate_for_job(inp.model, variant, hp, p.seq_len)
    resources.guard(estimate, *resources.available_bytes(cuda), what=f"the {variant} memory probe")

    def probe(attempt):
        """The probe's timed steps once, from the same random weights, and the machine's load meanwhile."""
        with MachineLoad() as load:
            outcome = run_probe(inp.model, variant, hp, precision, cuda, p.steps, p.warmup_steps, p.seq_len, p.seed,
                                p.work_dir, p.timing["step_outlier_multiple"])
        observed = load.report(p.timing["outside_load_cores"])
        return (outcome, observed), observed, {"step_time_s": outcome["step_time_s"],
                                               "peak_memory_mb": outcome["peak_memory_mb"]}

    (result, observed), reruns = redo_while_loaded(probe, p.timing)
    print(result)
    alone = alone_evidence(job.threads, job.resources.scheduler_cores)  # after the timed steps: their interval
    alone["observed_load"] = observed
    alone.update(reruns)
    fields = {"steps": p.steps, "warmup_steps": p.warmup_steps, "variant": variant, "batch_size": hp["batch_size"],
              "seq_len": p.seq_len, "gradient_checkpointing": hp["gradient_checkpointing"],
              "weights_dtype": p.weights_dtype, "precision": precision, "cuda": cuda, "threads": job.threads,
              "outside_load": alone["observed_load"]["outside_load_observed"],
              "outside_cores": alone["observed_load"]["outside_cores_mean"], "training": False,
              "attempts": len(reruns["attempts"]), "reruns_allowed": reruns["reruns_allowed"],
              "threshold": p.timing["outside_load_cores"], "contaminated": reruns["contaminated"]}
    write_metrics(p.metrics, {
        "peak_train_memory_mb": dict(value=result["peak_memory_mb"], inputs=[inp.model], method_fields=fields,
                                     details={**result, "estimate_bytes": estimate, **alone}),
        "step_time_s": dict(value=result["step_time_s"], inputs=[inp.model], method_fields=fields,
                            contaminated=reruns["contaminated"], details={**result["step_time"], **alone}),
    })
