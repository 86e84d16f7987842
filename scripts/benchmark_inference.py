"""Rule inference: greedy generation speed for full, qlora and qlora_merged (Table 11)."""
from qrepro.evaluation.inference import paper_protocol, time_generation
from qrepro import uncertainty
from qrepro.load import MachineLoad
from qrepro.metrics_io import write_metrics
from qrepro.model.loading import prepare_eval
from qrepro.runlog import alone_evidence, log_to

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
job = snakemake  # noqa: F821
kind = job.wildcards.model
with log_to(job.log[0]):
    model, tokenizer, dtype, cuda = prepare_eval(kind, inp.get("base_model"), inp.model, inp.tokenizer,
                                                 p.quantization, p.dtype, job.threads)
    with MachineLoad() as load:
        result = time_generation(model, tokenizer, p.prompts, p.new_tokens, p.repetitions)
    alone = alone_evidence(job.threads, job.resources.scheduler_cores)  # after the timed runs: their interval
    alone["observed_load"] = load.report(p.timing["outside_load_cores"])
    run_interval, run_bootstrap = uncertainty.median_bootstrap(
        result["run_times_s"], "timed run", "run_times_s", p.bootstrap, "timed runs",
        strata=result["run_prompts"], strata_field="run_prompts")
    paper = paper_protocol(result, p.paper_prompts, p.new_tokens)
    source = [path for path in (inp.get("base_model"), inp.tokenizer) if path] + list(inp.model)
    fields = {"new_tokens": p.new_tokens, "dtype": dtype, "cuda": cuda, "threads": job.threads,
              "repetitions": p.repetitions, "prompts": len(p.prompts),
              "outside_load": alone["observed_load"]["outside_load_observed"],
              "outside_cores": alone["observed_load"]["outside_cores_mean"]}
    details = {**result, **alone}
    write_metrics(p.metrics, {
        "inference_time_s": dict(value=result["median_s"], inputs=source, method_fields=fields, interval=run_interval,
                                 details={**details, "bootstrap": run_bootstrap}),
        "tokens_per_s": dict(value=result["tokens_per_s"], inputs=source, method_fields=fields, details=details),
        "inference_time_paper_s": dict(value=paper["mean_s"], inputs=source, details={**paper, **alone},
                                       method_fields={**fields, "paper_prompts": paper["prompts"]}),
        "tokens_per_s_paper": dict(value=paper["tokens_per_s"], inputs=source, details={**paper, **alone},
                                   method_fields={**fields, "paper_prompts": paper["prompts"]}),
    })
