"""Rule tokenize_pretrain: the pretraining portion, packed into max_length blocks."""
from datasets import DatasetDict, load_from_disk
from transformers import AutoTokenizer

from qrepro.data.splits import save, tokenize_packed
from qrepro.data.tokenizer import finish
from qrepro.runlog import log_to

p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    raw = load_from_disk(snakemake.input.raw)  # noqa: F821
    if "pretrain" not in raw:
        raise ValueError(f"{snakemake.input.raw} has no pretrain split: model.source: pretrain needs "  # noqa: F821
                         "data.source: synthetic, or a pretrain.txt/.parquet in data.local_dir")
    tokenizer = finish(AutoTokenizer.from_pretrained(snakemake.input.tokenizer))  # noqa: F821
    packed = DatasetDict({"train": tokenize_packed(raw["pretrain"], tokenizer, p.max_length)})
    print(packed)
    save(packed, snakemake.output.tokenized)  # noqa: F821
