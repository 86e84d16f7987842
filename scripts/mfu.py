"""Rule mfu: model FLOPs utilization and achieved TFLOP/s, the paper's way and the correct way (Table 8).
The files it reads are the catalogue's `reads` for the mfu group (paper/metrics.yaml), the rule's named inputs."""
from qrepro.derived import mean_over_seeds, seed_values
from qrepro.evaluation.records import mfu_records
from qrepro.metrics_io import read_metric, write_metrics
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    value = lambda path: read_metric(path)["value"]  # noqa: E731
    peak = read_metric(inp.peak)
    flops = {"paper": value(inp.paper_flops), "analytic": value(inp.analytic_flops)}
    sources = {"paper": [inp.peak, inp.paper_flops, inp.steps, inp.train_time],
               "analytic": [inp.peak, inp.analytic_flops, inp.step_time]}
    timed = {name: read_metric(path) for name, path in (("steps", inp.steps), ("train_time", inp.train_time),
                                                        ("step_time", inp.step_time))}
    seeded = [r["seeds"]["seeds"] for r in timed.values() if "seeds" in r]
    seeds = seeded[0] if seeded else [None]
    # with several training seeds, MFU of each seed's run (its times), then their mean (derived.mean_over_seeds)
    per_seed = [mfu_records(flops, *(seed_values(timed[n], seeds)[i] if seeded else timed[n]["value"]
                                     for n in ("steps", "train_time", "step_time")),
                            peak["value"], peak["method"], peak["details"], sources, p.t4_peak_tflops)
                for i in range(len(seeds))]
    write_metrics(p.metrics, mean_over_seeds(per_seed, seeds, p.level) if seeded else per_seed[0])
