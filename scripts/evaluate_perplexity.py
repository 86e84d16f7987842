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
    model, tokenizer, dtype, _ = prepare_eval(kind, inp.base_model, inp.get("model"), inp.tokenizer, p.quantization,
                                              p.dtype, snakemake.threads)  # noqa: F821
    texts = list(load_from_disk(inp.raw)["test"]["text"])
    paper = perplexity.paper_protocol(model, tokenizer, texts, p.max_length, p.paper_samples)
    token = perplexity.token_level(model, tokenizer, texts, p.max_length, p.stride, p.batch_size)
    source = [str(f) for f in inp if "qrepro" not in str(f)]
    meaningful = "" if p.init == "pretrained" else " Random weights (model.init: random): not meaningful."
    write_metrics(p.metrics_dir, kind, {
        "perplexity_paper": dict(value=paper["perplexity"], unit="", inputs=source, method=(
            f"Paper protocol: exp(mean per-sample loss) over the first {paper['samples']} non-empty test rows, each "
            f"padded to {p.max_length} with labels = input_ids, so padding (eos) tokens are scored ({dtype})."
            + meaningful), details=paper),
        "perplexity_token": dict(value=token["perplexity"], unit="", inputs=source, method=(
            f"Token-level: whole test split joined with blank lines, sliding window {p.max_length}, stride "
            f"{p.stride}, context tokens masked, exp(sum NLL / {token['scored_tokens']} scored tokens) ({dtype})."
            + meaningful), details=token),
    })
