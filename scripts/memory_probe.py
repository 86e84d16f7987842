"""Rule memory_probe: peak training memory and step time of one variant at the configured architecture."""
from qrepro.metrics_io import write_metrics
from qrepro.runlog import alone_evidence, log_to
from qrepro.training import resources
from qrepro.training import trainer as training
from qrepro.training.probe import run_probe

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
job = snakemake  # noqa: F821
variant = job.wildcards.variant
with log_to(job.log[0]):
    training.set_threads(job.threads)
    cuda, precision = training.device_and_precision(p.precision)
    alone = alone_evidence(job.threads, job.resources.scheduler_cores)
    hp = {**p.hp, "gradient_accumulation_steps": 1, "weights_dtype": p.weights_dtype}
    estimate = resources.estimate_for_job(inp.model, variant, hp, p.seq_len)
    resources.guard(estimate, *resources.available_bytes(cuda), what=f"the {variant} memory probe")
    result = run_probe(inp.model, variant, hp, precision, cuda, p.steps, p.warmup_steps, p.seq_len, p.seed,
                       p.work_dir)
    print(result)
    how = (f"{p.steps} optimizer steps of {variant} on random token ids (batch {hp['batch_size']} x {p.seq_len} "
           f"tokens, no accumulation, gradient checkpointing {'on' if hp['gradient_checkpointing'] else 'off'}), "
           f"the configured architecture with random {p.weights_dtype} weights, {precision}, "
           f"{'CUDA' if cuda else 'CPU'}, {job.threads} thread(s)")
    write_metrics(p.metrics_dir, f"probe_{variant}", {
        "peak_train_memory_mb": dict(value=result["peak_memory_mb"], unit="MB (1024^2 bytes)", inputs=[inp.model],
                                     timing=True, method=f"{result['peak_memory_method']}; over {how}.",
                                     details={**result, "estimate_bytes": estimate, **alone}),
        "step_time_s": dict(value=result["step_time_s"], unit="s", inputs=[inp.model], timing=True,
                            method=(f"Median optimizer-step time after the first {p.warmup_steps} warm-up step(s) "
                                    f"(TrainerCallback, data loading included) in {how}."),
                            details={**result["step_time"], **alone}),
    })
