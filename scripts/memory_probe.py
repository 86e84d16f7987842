"""Rule memory: peak training memory of one variant at the configured architecture, random weights."""
from qrepro import resources, training
from qrepro.metrics_io import write_metrics
from qrepro.probe import run_probe
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
variant = snakemake.wildcards.variant  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    training.set_threads(snakemake.threads)  # noqa: F821
    cuda, precision = training.device_and_precision(p.precision)
    hp = {**p.hp, "gradient_accumulation_steps": 1, "weights_dtype": p.weights_dtype}
    estimate = resources.estimate_for_job(inp.model, variant, hp, p.seq_len)
    resources.guard(estimate, *resources.available_bytes(cuda), what=f"the {variant} memory probe")
    result = run_probe(inp.model, variant, hp, precision, cuda, p.steps, p.seq_len, p.seed, p.work_dir)
    print(result)
    how = (f"{p.steps} optimizer step(s) of {variant} on random token ids (batch {hp['batch_size']} x {p.seq_len} "
           f"tokens, no accumulation), the configured architecture with random {p.weights_dtype} weights, "
           f"{precision}, {'CUDA' if cuda else 'CPU'}")
    write_metrics(p.metrics_dir, f"probe_{variant}", {
        "peak_train_memory_mb": dict(value=result["peak_memory_mb"], unit="MB (1024^2 bytes)", inputs=[inp.model],
                                     timing=True, method=f"{result['peak_memory_method']} over {how}.",
                                     details={**result, "estimate_bytes": estimate}),
        "step_time_s": dict(value=result["step_time_s"], unit="s", inputs=[inp.model], timing=True,
                            method=f"Last optimizer step's time (TrainerCallback) in {how}.", details=result),
    })
