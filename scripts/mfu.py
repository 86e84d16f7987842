"""Rule mfu: model FLOPs utilization and achieved TFLOP/s, the paper's way and the correct way (Table 8).
The files it reads are the catalogue's `reads` for the mfu group (paper/metrics.yaml), the rule's named inputs."""
from qrepro.derived import mark_contaminated
from qrepro.seeds import mean_over_seeds, seed_values
from qrepro.evaluation.records import mfu_records
from qrepro.metrics_io import read_metric, write_metrics
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    peak = read_metric(inp.peak)
    flops = {"paper": read_metric(inp.paper_flops)["value"], "analytic": read_metric(inp.analytic_flops)["value"]}
    sources = {"paper": [inp.peak, inp.paper_flops, inp.steps, inp.train_time],
               "analytic": [inp.peak, inp.analytic_flops, inp.step_time]}
    timed = {name: read_metric(path) for name, path in (("steps", inp.steps), ("train_time", inp.train_time),
                                                        ("step_time", inp.step_time))}
    training_seeds = next((r["seeds"]["seeds"] for r in timed.values() if "seeds" in r), None)
    if training_seeds is None:  # one training run per variant
        records = mfu_records(flops, timed["steps"]["value"], timed["train_time"]["value"], timed["step_time"]["value"],
                              peak["value"], peak["method"], peak["details"], sources, p.t4_peak_tflops)
    else:  # several: MFU of each seed's run (its times), then their mean (seeds.mean_over_seeds)
        per_run = zip(*(seed_values(timed[n], training_seeds) for n in ("steps", "train_time", "step_time")))
        records = mean_over_seeds([mfu_records(flops, steps, train_time, step_time, peak["value"], peak["method"],
                                               peak["details"], sources, p.t4_peak_tflops)
                                   for steps, train_time, step_time in per_run], training_seeds, p.level)
    # an MFU computed from a contaminated time (or peak) is contaminated too
    read = {inp.peak: peak, inp.steps: timed["steps"], inp.train_time: timed["train_time"],
            inp.step_time: timed["step_time"]}
    write_metrics(p.metrics, mark_contaminated(records, read))
