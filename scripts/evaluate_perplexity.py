"""Rule perplexity: base, full and qlora on the test split (Table 10): the paper's way, token-level (sliding windows
over the joined split) and per row (each row alone), each with a bootstrap interval over the test split
(qrepro.uncertainty); the per-row, per-window and per-article NLLs go to an audit file."""
import json

from datasets import load_from_disk

from qrepro import uncertainty
from qrepro.data.bundled import resampling_clusters
from qrepro.evaluation import perplexity
from qrepro.metrics_io import write_metrics
from qrepro.model.loading import prepare_eval
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
inp, out = snakemake.input, snakemake.output  # noqa: F821
kind = snakemake.wildcards.model  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    model, tokenizer, dtype, _ = prepare_eval(kind, inp.get("base_model"), inp.get("model"), inp.tokenizer,
                                              p.quantization, p.dtype, snakemake.threads)  # noqa: F821
    texts = list(load_from_disk(inp.raw)["test"]["text"])
    clusters, cluster_unit = resampling_clusters(texts)  # articles, or rows where the split has no article headings
    line_breaks = perplexity.line_break_ids(tokenizer)
    paper = perplexity.paper_protocol(model, tokenizer, texts, p.max_length, p.paper_samples)
    token = perplexity.token_level(model, tokenizer, texts, p.max_length, p.stride, p.batch_size, line_breaks, clusters)
    row = perplexity.per_row(model, tokenizer, texts, p.max_length, p.stride, p.batch_size, line_breaks)
    # the units each perplexity sums: the paper's exp(mean row loss) is exp(sum / count) with one "token" per row
    audit = {"paper": {"unit": "test row", "nll": paper.pop("row_losses"), "tokens": [1] * paper["samples"],
                       "scored": f"the paper's protocol scores (the first {paper['samples']} non-empty rows of the "
                                 "test split)"},
             "token": {"unit": "window", "nll": token["window_nll"], "tokens": token["window_tokens"],
                       cluster_unit: token["window_article"],  # each window's cluster, as token_article sums them
                       "scored": "of the test split, taken as independent (neighbouring windows of one article are "
                                 "correlated, so this interval is too narrow; the one by article is the one to read)"},
             "token_article": {"unit": cluster_unit,
                               **uncertainty.sum_by_cluster(token.pop("window_nll"), token.pop("window_tokens"),
                                                            token.pop("window_article")),
                               "scored": f"of the test split, each {cluster_unit} with the windows whose first scored "
                                         "token is in it (whole articles move together)"},
             "row": {"unit": cluster_unit,
                     **uncertainty.sum_by_cluster(row.pop("row_nll"), row.pop("row_tokens"),
                                                  [clusters[i] for i in row.pop("row_index")]),
                     "scored": f"of the test split, each {cluster_unit} with its rows"}}
    with open(out.audit, "w") as handle:
        json.dump(audit, handle)
    boot = p.bootstrap
    intervals = {}
    for protocol, units in audit.items():
        indices = uncertainty.resample_indices(len(units["nll"]), boot["replicates"], boot["seed"])
        low, high = uncertainty.percentile_interval(
            uncertainty.perplexity_replicates(units["nll"], units["tokens"], indices), boot["level"])
        intervals[protocol] = uncertainty.interval(low, high, boot["level"], uncertainty.method_text(
            units["unit"], len(units["nll"]), boot["replicates"], boot["seed"], paired=False, scored=units["scored"]))
    resampled = lambda protocol: {"audit": out.audit, "protocol": protocol, "unit": audit[protocol]["unit"],  # noqa: E731
                                  "units": len(audit[protocol]["nll"]), "scored": audit[protocol]["scored"], **boot}
    source = [path for path in (inp.get("base_model"), inp.tokenizer, inp.raw) if path] + list(inp.get("model", []))
    fields = {"max_length": p.max_length, "dtype": dtype, "init": p.init, "cluster_unit": cluster_unit}
    padding = {key: paper[key] for key in ("samples", "scored_tokens", "padding_tokens", "padding_percent")}
    windowed = {**fields, "stride": p.stride, "scored_tokens": token["scored_tokens"],
                "masked_targets": token["masked_targets"]}
    write_metrics(p.metrics, {
        "perplexity_paper": dict(value=paper["perplexity"], inputs=source, interval=intervals["paper"],
                                 details={**paper, "bootstrap": resampled("paper")},
                                 method_fields={**fields, **padding}),
        "perplexity_paper_padding_percent": dict(value=paper["padding_percent"], inputs=[inp.tokenizer, inp.raw],
                                                 method_fields={**fields, **padding}),
        "perplexity_token": dict(value=token["perplexity"], inputs=source, interval=intervals["token_article"],
                                 details={**token, "bootstrap": resampled("token_article"),
                                          "interval_by_window": intervals["token"],
                                          "bootstrap_by_window": resampled("token")},
                                 method_fields=windowed),
        "perplexity_row": dict(value=row["perplexity"], inputs=source, interval=intervals["row"],
                               details={**row, "bootstrap": resampled("row")},
                               method_fields={**fields, "stride": p.stride, "scored_tokens": row["scored_tokens"],
                                              "rows": row["rows"]}),
    })
