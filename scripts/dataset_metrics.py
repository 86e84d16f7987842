"""Rule dataset_metrics: Table 1 (rows, non-empty rows, tokens per split, max length, vocabulary)."""
import json

from qrepro.metrics_io import write_metrics
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    source = [snakemake.input.stats]  # noqa: F821
    stats = json.loads(open(source[0]).read())
    records = {name: dict(value=stats[key], inputs=source)
               for name, key in (("max_seq_length", "max_length"), ("vocab_size", "vocab_size"), ("packing", "packing"))}
    for split, s in stats["splits"].items():
        records[f"{split}_samples"] = dict(value=s["rows"], inputs=source)
        records[f"{split}_non_empty_rows"] = dict(value=s["non_empty_rows"], inputs=source)
        records[f"{split}_tokens"] = dict(value=s["tokens"], inputs=source)
        records[f"{split}_padding_efficiency"] = dict(value=s["tokens"] / s["tokens_with_padding"], inputs=source)
        records[f"{split}_truncated_rows_percent"] = dict(value=100 * s["truncated_rows"] / s["non_empty_rows"],
                                                          inputs=source)
        records[f"{split}_truncated_tokens_percent"] = dict(
            value=100 * (s["untruncated_tokens"] - s["tokens"]) / s["untruncated_tokens"], inputs=source)
    write_metrics(p.metrics, records)
