"""Rule mfu: model FLOPs utilization and achieved TFLOP/s, the paper's way and the correct way (Table 8).
The files it reads are the catalogue's `reads` for the mfu group (paper/metrics.yaml), the rule's named inputs."""
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
    records = mfu_records(flops, value(inp.steps), value(inp.train_time), value(inp.step_time), peak["value"],
                          peak["method"], peak["details"], sources, p.t4_peak_tflops)
    write_metrics(p.metrics, records)
