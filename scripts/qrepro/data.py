"""Raw splits from any source, then one `datasets` code path: tokenize (paper protocol) or pack."""
from __future__ import annotations

import os
from itertools import chain
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset

from .corpus import generate_corpus
from .hub import hub_error

FINETUNE_SPLITS = ("train", "validation", "test")


def synthetic_raw(seed: int, scale: float, pretrain_rows: int, people: int, cities: int) -> DatasetDict:
    corpus = generate_corpus(seed, scale, pretrain_rows, people, cities)
    return DatasetDict({split: Dataset.from_dict({"text": rows}) for split, rows in corpus.items()})


def hf_raw(name: str, config_name: str | None, revision: str | None) -> DatasetDict:
    try:
        raw = load_dataset(name, config_name, revision=revision)
    except Exception as err:  # the hub raises many types; all mean "could not get the data"
        raise hub_error(f"dataset {name}/{config_name}", "data.source: local with data.local_dir") from err
    return DatasetDict({split: raw[split] for split in FINETUNE_SPLITS})


def local_raw(directory: str) -> DatasetDict:
    """A folder with train/validation/test as .txt (one row per line) or .parquet (a 'text' column)."""
    folder = Path(directory)
    splits = {}
    for split in FINETUNE_SPLITS + ("pretrain",):
        txt, parquet = folder / f"{split}.txt", folder / f"{split}.parquet"
        if parquet.exists():
            splits[split] = load_dataset("parquet", data_files=str(parquet), split="train")
        elif txt.exists():
            # keep_linebreaks reproduces WikiText rows exactly, empty rows included.
            splits[split] = load_dataset("text", data_files=str(txt), split="train", keep_linebreaks=True)
        elif split != "pretrain":
            raise FileNotFoundError(f"data.local_dir {folder} has no {split}.txt or {split}.parquet")
    return DatasetDict(splits)


def load_raw(source: str, *, seed: int, synthetic: dict, hf: dict, local_dir: str | None) -> DatasetDict:
    if source == "synthetic":
        return synthetic_raw(seed, synthetic["scale"], synthetic["pretrain_rows"],
                             synthetic["people"], synthetic["cities"])
    if source == "hf":
        return hf_raw(hf["name"], hf["config"], hf["revision"])
    if source == "local":
        return local_raw(local_dir)
    raise ValueError(f"data.source must be synthetic, hf or local, not {source!r}")


def non_empty(ds: Dataset) -> Dataset:
    """The paper trains on every row that is not blank; WikiText's empty rows are dropped."""
    return ds.filter(lambda row: len(row["text"].strip()) > 0)


def tokenize_padded(ds: Dataset, tokenizer, max_length: int) -> Dataset:
    """Paper protocol: one sample per non-empty row, truncated and padded to max_length (pad = eos)."""
    return non_empty(ds).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length, padding="max_length"),
        batched=True, remove_columns=ds.column_names)


def tokenize_packed(ds: Dataset, tokenizer, max_length: int) -> Dataset:
    """run_clm's group_texts: concatenate all rows, then cut into max_length blocks (remainder dropped)."""
    tokenized = non_empty(ds).map(lambda batch: tokenizer(batch["text"]), batched=True,
                                  remove_columns=ds.column_names)

    def group_texts(batch):
        joined = {key: list(chain.from_iterable(batch[key])) for key in batch}
        usable = (len(joined["input_ids"]) // max_length) * max_length
        return {key: [values[i:i + max_length] for i in range(0, usable, max_length)]
                for key, values in joined.items()}

    return tokenized.map(group_texts, batched=True, batch_size=1000)


def tokenize_splits(raw: DatasetDict, tokenizer, max_length: int, packing: bool) -> DatasetDict:
    fn = tokenize_packed if packing else tokenize_padded
    return DatasetDict({split: fn(raw[split], tokenizer, max_length) for split in FINETUNE_SPLITS})


def split_stats(raw: DatasetDict, tokenized: DatasetDict) -> dict[str, dict[str, int]]:
    """Per split: raw rows (empty included, as Table 1 counts), non-empty rows, and token counts."""
    stats = {}
    for split in FINETUNE_SPLITS:
        masks = tokenized[split]["attention_mask"]
        real = sum(sum(m) for m in masks)
        total = sum(len(m) for m in masks)
        stats[split] = {"rows": raw[split].num_rows,
                        "non_empty_rows": non_empty(raw[split]).num_rows,
                        "samples": tokenized[split].num_rows,
                        "tokens": real,
                        "tokens_with_padding": total}
    return stats


def save(ds: DatasetDict, path: str | os.PathLike) -> None:
    ds.save_to_disk(str(path))
