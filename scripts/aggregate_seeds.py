"""Rule aggregate_seeds: one variant's training and perplexity files as the mean over the training seeds' runs
(qrepro.seeds.seed_aggregate): each seed's value, their sd and the t interval of the mean travel with it."""
from qrepro.seeds import seed_aggregate
from qrepro.metrics_io import metric_record, read_metric, write_record
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    for path, seed_paths in p.seed_files.items():
        record = metric_record(**seed_aggregate([read_metric(f) for f in seed_paths], p.seeds, seed_paths, p.level))
        write_record(path, record)
        print(f"{path}: {record['value']!r} over seeds {p.seeds} (sd {record['seeds'].get('sd', '-')})")
