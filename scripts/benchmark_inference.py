"""Rule inference: greedy generation speed for full, qlora and qlora_merged (Table 11)."""
from qrepro.evaluation.inference import time_generation
from qrepro.metrics_io import write_metrics
from qrepro.model.loading import prepare_eval
from qrepro.runlog import alone_evidence, log_to

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
job = snakemake  # noqa: F821
kind = job.wildcards.model
with log_to(job.log[0]):
    alone = alone_evidence(job.threads, job.resources.scheduler_cores)
    model, tokenizer, dtype, cuda = prepare_eval(kind, inp.base_model, inp.model, inp.tokenizer, p.quantization,
                                                 p.dtype, job.threads)
    result = time_generation(model, tokenizer, p.prompts, p.new_tokens, p.repetitions)
    source = [inp.base_model, *inp.model]
    how = (f"greedy generate(max_new_tokens=min_new_tokens={p.new_tokens}) in {dtype} on "
           f"{'CUDA' if cuda else f'CPU ({job.threads} thread(s))'}, one warm-up then {p.repetitions} timed runs for "
           f"each of the paper's {len(p.prompts)} prompts, the same prompts for every variant (the paper used one "
           "prompt for standard FT and three others for QLoRA)")
    details = {**result, **alone}
    write_metrics(p.metrics_dir, kind, {
        "inference_time_s": dict(value=result["median_s"], unit="s", inputs=source, timing=True,
                                 method=f"Median run time of {how}; spread in details.", details=details),
        "tokens_per_s": dict(value=result["tokens_per_s"], unit="tokens/s", inputs=source, timing=True,
                             method=(f"Median over runs of tokens generated (counted from the output ids) / run "
                                     f"time, {how}."), details=details),
    })
