"""Rules comparisons and architecture_comparisons: every derived number (ratios, reductions, changes, radar
values) written once, as files: from the architecture alone, or from a run's measurements."""
from qrepro.evaluation.comparisons import Comparison, records
from qrepro.metrics_io import write_metrics
from qrepro.report.store import MetricStore
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    metrics = MetricStore.load(list(snakemake.input.metrics))  # noqa: F821
    write_metrics(p.metrics, records(metrics, [Comparison.from_data(c) for c in p.comparisons], p.radar))
