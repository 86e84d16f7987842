"""Rule inference: greedy generation speed for full, qlora and qlora_merged (Table 11)."""
from qrepro.inference import time_generation
from qrepro.loading import prepare_eval
from qrepro.metrics_io import write_metrics
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
kind = snakemake.wildcards.model  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    model, tokenizer, dtype, cuda = prepare_eval(kind, inp.base_model, inp.model, inp.tokenizer, p.quantization,
                                                 p.dtype, snakemake.threads)  # noqa: F821
    result = time_generation(model, tokenizer, p.prompts, p.new_tokens, p.repetitions)
    source = [inp.base_model, *inp.model]
    how = (f"greedy generate(max_new_tokens=min_new_tokens={p.new_tokens}) in {dtype} on "
           f"{'CUDA' if cuda else 'CPU'}, one warm-up then {p.repetitions} timed runs for each of the paper's "
           f"{len(p.prompts)} prompts, the same prompts for every variant (the paper used one prompt for standard "
           "FT and three others for QLoRA)")
    write_metrics(p.metrics_dir, kind, {
        "inference_time_s": dict(value=result["median_s"], unit="s", inputs=source, timing=True,
                                 method=f"Median wall time of {how}.", details=result),
        "tokens_per_s": dict(value=result["tokens_per_s"], unit="tokens/s", inputs=source, timing=True,
                             method=f"{p.new_tokens} / inference_time_s, {how}.", details=result),
    })
