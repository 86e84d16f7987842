"""Rule perplexity: base, full and qlora on the test split (Table 10): the paper's way, token-level (sliding windows
over the joined split) and per row (each row alone), each with a bootstrap interval over the split
(qrepro.uncertainty); the per-row, per-window and per-article NLLs go to an audit file. Rule sweep_perplexity: a
sweep point's model on the validation or the test split (params.split), token-level only (params.protocols)."""
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
kind = p.model  # base | full | qlora | qlora_merged
protocols = set(p.protocols)  # which of paper, token, row this job computes (exactly the metrics it declares)
with log_to(snakemake.log[0]):  # noqa: F821
    model, tokenizer, dtype, _ = prepare_eval(kind, inp.get("base_model"), inp.get("model"), inp.tokenizer,
                                              p.quantization, p.dtype, snakemake.threads)  # noqa: F821
    texts = list(load_from_disk(inp.raw)[p.split]["text"])
    clusters, cluster_unit = resampling_clusters(texts)  # articles, or rows where the split has no article headings
    line_breaks = perplexity.line_break_ids(tokenizer)
    split = f"{p.split} split"
    audit = {}  # the units each perplexity sums: the paper's exp(mean row loss) is exp(sum / count), one "token" a row
    if "paper" in protocols:
        paper = perplexity.paper_protocol(model, tokenizer, texts, p.max_length, p.paper_samples)
        audit["paper"] = {"unit": f"{p.split} row", "nll": paper.pop("row_losses"), "tokens": [1] * paper["samples"],
                          "scored": f"the paper's protocol scores (the first {paper['samples']} non-empty rows of the "
                                    f"{split})"}
    if "token" in protocols:
        token = perplexity.token_level(model, tokenizer, texts, p.max_length, p.stride, p.batch_size, line_breaks,
                                       clusters)
        audit["token"] = {"unit": "window", "nll": token["window_nll"], "tokens": token["window_tokens"],
                          cluster_unit: token["window_article"],  # each window's cluster, as token_article sums them
                          "scored": f"of the {split}, taken as independent (neighbouring windows of one article are "
                                    "correlated, so this interval is too narrow; the one by article is the one to read)"}
        audit["token_article"] = {"unit": cluster_unit,
                                  **uncertainty.sum_by_cluster(token.pop("window_nll"), token.pop("window_tokens"),
                                                               token.pop("window_article")),
                                  "scored": f"of the {split}, each {cluster_unit} with the windows whose first scored "
                                            "token is in it (whole articles move together)"}
    if "row" in protocols:
        row = perplexity.per_row(model, tokenizer, texts, p.max_length, p.stride, p.batch_size, line_breaks)
        audit["row"] = {"unit": cluster_unit,
                        **uncertainty.sum_by_cluster(row.pop("row_nll"), row.pop("row_tokens"),
                                                     [clusters[i] for i in row.pop("row_index")]),
                        "scored": f"of the {split}, each {cluster_unit} with its rows"}
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
    fields = {"max_length": p.max_length, "dtype": dtype, "init": p.init, "cluster_unit": cluster_unit,
              "split": p.split, "model": kind}
    records = {}
    if "paper" in protocols:
        padding = {key: paper[key] for key in ("samples", "scored_tokens", "padding_tokens", "padding_percent")}
        records["perplexity_paper"] = dict(value=paper["perplexity"], inputs=source, interval=intervals["paper"],
                                           details={**paper, "bootstrap": resampled("paper")},
                                           method_fields={**fields, **padding})
        records["perplexity_paper_padding_percent"] = dict(value=paper["padding_percent"],
                                                           inputs=[inp.tokenizer, inp.raw],
                                                           method_fields={**fields, **padding})
    if "token" in protocols:
        records["perplexity_token"] = dict(value=token["perplexity"], inputs=source, interval=intervals["token_article"],
                                           details={**token, "bootstrap": resampled("token_article"),
                                                    "interval_by_window": intervals["token"],
                                                    "bootstrap_by_window": resampled("token")},
                                           method_fields={**fields, "stride": p.stride,
                                                          "scored_tokens": token["scored_tokens"],
                                                          "masked_targets": token["masked_targets"]})
    if "row" in protocols:
        records["perplexity_row"] = dict(value=row["perplexity"], inputs=source, interval=intervals["row"],
                                         details={**row, "bootstrap": resampled("row")},
                                         method_fields={**fields, "stride": p.stride,
                                                        "scored_tokens": row["scored_tokens"], "rows": row["rows"]})
    write_metrics(p.metrics, records)
