"""Rules comparisons and architecture_comparisons: every derived number (ratios, reductions, changes, radar
values) written once, as files: from the architecture alone, or from a run's measurements."""
from qrepro.derived import Comparison, RadarPoint, comparison_records
from qrepro.metrics_io import MetricStore, read_json, write_metrics
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    metrics = MetricStore.load(list(snakemake.input.metrics))  # noqa: F821
    comparisons = [Comparison.from_data(c) for c in p.comparisons]
    points = [RadarPoint(**{**point, "s": tuple(point["s"]), "q": tuple(point["q"])}) for point in p.radar]
    # perplexity audits (rule comparisons only): the paired bootstrap intervals of perplexity comparisons
    audits = {path: read_json(path) for path in snakemake.input.get("audits", [])}  # noqa: F821
    write_metrics(p.metrics, comparison_records(metrics, comparisons, points, audits, p.level))
