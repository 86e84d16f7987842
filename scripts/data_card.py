"""Rule data_card: what data and tokenizer this run used, one metric file per fact (results/metrics/data_card).

Every value is a property of the inputs, never of the run, so two runs on the same data write byte-identical
files (no timing, no absolute paths of the working directory)."""
import hashlib
from pathlib import Path

from datasets import load_from_disk

from qrepro.data.checks import ROW_TERMINATOR, row_counts, rows_sha256
from qrepro.data.splits import read_provenance
from qrepro.data.tokenizer import model_tokenizer_revision, training_texts
from qrepro.metrics_io import write_metrics
from qrepro.runlog import log_to

SPLITS = ("train", "validation", "test", "pretrain")
p = snakemake.params  # noqa: F821
inp = snakemake.input  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    raw = load_from_disk(inp.raw)
    prov = read_provenance(inp.raw)
    data_in = [inp.raw]
    tok_in = [inp.tokenizer]
    source = prov["source"]
    if source == "hf":
        location = f"{prov['dataset']}/{prov['config']}"
        revision = prov["revision"]
    elif source == "local":
        location, revision = prov["local_dir"], None
    elif source == "bundled":
        carve = prov["carve"]
        location = (f"{carve['source_dir']}: " + ", ".join(
            f"{split} = {s['file']} lines {s['first_line']}-{s['last_line']} ({s['articles']} articles)"
            for split, s in carve["splits"].items()))
        revision = None
    else:
        args = ", ".join(f"{k}={prov[k]}" for k in ("seed", "scale", "pretrain_rows", "people", "cities"))
        location, revision = f"{prov['generator']}({args})", None
    records = {
        "data_source": dict(value=source, inputs=data_in, details=prov),
        "data_location": dict(value=location, inputs=data_in),
        "data_revision": dict(value=revision, inputs=data_in),
        "data_licence": dict(value=p.bundled_licence if source == "bundled" else None, inputs=data_in),
        "data_files_sha256": dict(value="; ".join(f"{name} {digest}" for name, digest in prov["carve"]["sha256"].items())
                                  if source == "bundled" else None, inputs=data_in),
    }
    for split in SPLITS:
        texts = list(raw[split]["text"]) if split in raw else None
        counts = row_counts(texts) if texts is not None else {}
        details = {"file": prov["files"][split]} if source in ("local", "bundled") and split in prov["files"] else None
        records[f"{split}_sha256"] = dict(value=rows_sha256(texts) if texts is not None else None, inputs=data_in,
                                          details=details, method_fields={"row_terminator": ROW_TERMINATOR.hex()})
        for what in ("rows", "empty_rows", "characters"):
            records[f"{split}_{what}"] = dict(value=counts.get(what), inputs=data_in)

    tokenizer_json = Path(inp.tokenizer) / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise FileNotFoundError(f"{tokenizer_json} is missing: the data card identifies the tokenizer by this "
                                "file, which every fast tokenizer saves; use a model with a fast tokenizer")
    if p.tokenizer_source == "train":
        name, tok_revision = f"byte-level BPE trained by qrepro.data.tokenizer.train_bpe (vocab_size {p.vocab_size})", None
        corpus_sha = rows_sha256(training_texts(raw))
    else:
        name, tok_revision, corpus_sha = p.model_id, model_tokenizer_revision(p.model_id, p.revision), None
    records.update({
        "tokenizer_source": dict(value=p.tokenizer_source, inputs=tok_in),
        "tokenizer_name": dict(value=name, inputs=tok_in),
        "tokenizer_revision": dict(value=tok_revision, inputs=tok_in),
        "tokenizer_corpus_sha256": dict(value=corpus_sha, inputs=tok_in + data_in),
        "tokenizer_sha256": dict(value=hashlib.sha256(tokenizer_json.read_bytes()).hexdigest(), inputs=tok_in),
    })
    for metric, record in records.items():
        print(metric, record["value"])
    write_metrics(p.metrics, records)
