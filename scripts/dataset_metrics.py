"""Rule dataset_metrics: Table 1 (rows, non-empty rows, tokens per split, max length, vocabulary)."""
import json

from qrepro.metrics_io import write_metrics
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    source = [snakemake.input.stats]  # noqa: F821
    stats = json.loads(open(source[0]).read())
    records = {
        "max_seq_length": dict(value=stats["max_length"], unit="tokens", inputs=source,
                               method="data.max_length: every sample is truncated (and, in the paper protocol, padded) to it."),
        "vocab_size": dict(value=stats["vocab_size"], unit="tokens", inputs=source, method="len(tokenizer)."),
        "packing": dict(value=stats["packing"], unit="", inputs=source,
                        method="false = paper protocol (one padded sample per row); true = concatenate and chunk."),
    }
    for split, s in stats["splits"].items():
        records[f"{split}_samples"] = dict(value=s["rows"], unit="rows", inputs=source, method=(
            "Raw rows of the split, empty rows included, as the paper's Table 1 counts them."))
        records[f"{split}_non_empty_rows"] = dict(value=s["non_empty_rows"], unit="rows", inputs=source, method=(
            "Rows with non-whitespace text: what training actually uses."))
        records[f"{split}_tokens"] = dict(value=s["tokens"], unit="tokens", inputs=source, method=(
            "Non-padding tokens after tokenization (sum of the attention mask)."))
        records[f"{split}_padding_efficiency"] = dict(value=s["tokens"] / s["tokens_with_padding"], unit="fraction",
            inputs=source, method="Non-padding tokens / all tokens the model processes for this split.")
    write_metrics(p.metrics_dir, "dataset", records)
