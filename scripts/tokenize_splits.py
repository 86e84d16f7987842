"""Rule tokenize: the fine-tuning splits, tokenized by the paper protocol (or packed)."""
import json

from datasets import load_from_disk
from transformers import AutoTokenizer

from qrepro.data.splits import save, split_stats, tokenize_splits
from qrepro.data.tokenizer import finish
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    raw = load_from_disk(snakemake.input.raw)  # noqa: F821
    tokenizer = finish(AutoTokenizer.from_pretrained(snakemake.input.tokenizer))  # noqa: F821
    tokenized = tokenize_splits(raw, tokenizer, p.max_length, p.packing)
    print(tokenized)
    save(tokenized, snakemake.output.tokenized)  # noqa: F821
    stats = {"max_length": p.max_length, "packing": p.packing, "vocab_size": len(tokenizer),
             "splits": split_stats(raw, tokenized, tokenizer, p.max_length, p.packing)}
    with open(snakemake.output.stats, "w") as handle:  # noqa: F821
        json.dump(stats, handle, indent=2, sort_keys=True)
