"""Rule perplexity: base, full and qlora on the test split, the paper's way and token-level (Table 10)."""
from datasets import load_from_disk

from qrepro.evaluation import perplexity
from qrepro.metrics_io import write_metrics
from qrepro.model.loading import prepare_eval
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
kind = snakemake.wildcards.model  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    model, tokenizer, dtype, _ = prepare_eval(kind, inp.get("base_model"), inp.get("model"), inp.tokenizer,
                                              p.quantization, p.dtype, snakemake.threads)  # noqa: F821
    texts = list(load_from_disk(inp.raw)["test"]["text"])
    paper = perplexity.paper_protocol(model, tokenizer, texts, p.max_length, p.paper_samples)
    token = perplexity.token_level(model, tokenizer, texts, p.max_length, p.stride, p.batch_size)
    source = [path for path in (inp.get("base_model"), inp.tokenizer, inp.raw) if path] + list(inp.get("model", []))
    fields = {"max_length": p.max_length, "dtype": dtype, "init": p.init}
    padding = {key: paper[key] for key in ("samples", "scored_tokens", "padding_tokens", "padding_percent")}
    write_metrics(p.metrics, {
        "perplexity_paper": dict(value=paper["perplexity"], inputs=source, details=paper,
                                 method_fields={**fields, **padding}),
        "perplexity_paper_padding_percent": dict(value=paper["padding_percent"], inputs=[inp.tokenizer, inp.raw],
                                                 method_fields={**fields, **padding}),
        "perplexity_token": dict(value=token["perplexity"], inputs=source, details=token,
                                 method_fields={**fields, "stride": p.stride, "scored_tokens": token["scored_tokens"]}),
    })
