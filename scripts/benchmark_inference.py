"""Rule inference: greedy generation speed of full, qlora and qlora_merged (Table 11), all loaded in this one job and
timed in interleaved rounds, their order rotated each round (qrepro.evaluation.inference.time_rounds)."""
from qrepro.evaluation.inference import paper_protocol, time_rounds
from qrepro import uncertainty
from qrepro.machine_load import MachineLoad, redo_while_loaded
from qrepro.metrics_io import write_metrics
from qrepro.model.loading import prepare_eval
from qrepro.runlog import alone_evidence, log_to

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
job = snakemake  # noqa: F821


def model_inputs(kind: str) -> list[str]:
    """The files a model is loaded from: the base model (QLoRA's NF4 base) and its trained files."""
    variant = kind.removesuffix("_merged")
    return ([inp.base_model] if variant != "full" else []) + [inp.tokenizer] + list(getattr(inp, variant))


def records(kind: str, result: dict, alone: dict, dtype: str, cuda: bool) -> dict:
    """The four metric records of one model."""
    pairing = f"rule inference, models {', '.join(result['timed_together']['models'])}, rounds from " \
              f"{result['timed_together']['started']}"
    bootstraps = {name: uncertainty.median_bootstrap(
        result[samples], "timed run", samples, p.bootstrap, described, groups=result["run_rounds"],
        groups_field="run_rounds", pairing=pairing)
        for name, samples, described in (("time", "run_times_s", "timed runs"),
                                         ("rate", "run_tokens_per_s", "runs' tokens/s"))}
    paper = paper_protocol(result, p.paper_prompts[kind.removesuffix("_merged")], p.new_tokens)
    fields = {"new_tokens": p.new_tokens, "dtype": dtype, "cuda": cuda, "threads": job.threads,
              "repetitions": p.repetitions, "prompts": len(p.prompts), "models": len(p.models),
              "outside_load": alone["observed_load"]["outside_load_observed"],
              "outside_cores": alone["observed_load"]["outside_cores_mean"], "training": False,
              "attempts": len(alone["attempts"]), "reruns_allowed": alone["reruns_allowed"],
              "threshold": p.timing["outside_load_cores"], "contaminated": alone["contaminated"]}
    details = {**result, **alone, "dtype": dtype}  # dtype: what ran, for the report's labels
    source = model_inputs(kind)
    paper_fields = {**fields, "paper_prompts": paper["prompts"]}
    flag = {"contaminated": alone["contaminated"]}  # every attempt observed outside load: marked wherever shown
    return {
        "inference_time_s": dict(value=result["median_s"], inputs=source, method_fields=fields, **flag,
                                 interval=bootstraps["time"][0], details={**details, "bootstrap": bootstraps["time"][1]}),
        "tokens_per_s": dict(value=result["tokens_per_s"], inputs=source, method_fields=fields, **flag,
                             interval=bootstraps["rate"][0], details={**details, "bootstrap": bootstraps["rate"][1]}),
        "inference_time_paper_s": dict(value=paper["mean_s"], inputs=source, details={**paper, **alone, "dtype": dtype},
                                       method_fields=paper_fields, **flag),
        "tokens_per_s_paper": dict(value=paper["tokens_per_s"], inputs=source, details={**paper, **alone, "dtype": dtype},
                                   method_fields=paper_fields, **flag),
    }


with log_to(job.log[0]):
    models = {}
    for kind in p.models:
        variant = kind.removesuffix("_merged")
        models[kind], tokenizer, dtype, cuda = prepare_eval(
            kind, inp.base_model if variant != "full" else None, list(getattr(inp, variant)), inp.tokenizer, p.quantization,
            p.dtype, job.threads)
    def timed(attempt):
        """Every round of every model once, and the machine's load meanwhile (redo_while_loaded's work)."""
        with MachineLoad() as load:
            result = time_rounds(models, tokenizer, p.prompts, p.new_tokens, p.repetitions)
        observed = load.report(p.timing["outside_load_cores"])
        return (result, observed), observed, {f"{kind}_median_s": result[kind]["median_s"] for kind in p.models}

    # outside load above the threshold: all the rounds again, up to timing.reruns more times (every attempt recorded)
    (results, observed), reruns = redo_while_loaded(timed, p.timing)
    alone = alone_evidence(job.threads, job.resources.scheduler_cores)  # after the timed runs: their interval
    alone.update(observed_load=observed, **reruns)
    written = {kind: records(kind, results[kind], alone, dtype, cuda) for kind in p.models}
    for kind, kind_records in written.items():
        write_metrics({path: spec for path, spec in p.metrics.items() if spec["scope"] == kind}, kind_records)
