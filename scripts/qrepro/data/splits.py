"""Raw splits from any source, then one `datasets` code path: tokenize (paper protocol) or pack."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset

from qrepro.data.bundled import read_carve_record
from qrepro.data.checks import FINETUNE_SPLITS, DataValidationError, check_local_file, check_splits, local_split_files
from qrepro.data.corpus import generate_corpus
from qrepro.hub import COMMIT, hub_error

PACKING_ROWS = 1000  # rows packed together (run_clm's group_texts map batch); each group drops its own remainder
PROVENANCE_FILE = "provenance.json"  # beside the saved splits: where the rows came from (read by the data card)


@dataclass
class Corpus:
    """Checked raw splits, where they came from, and the warnings the checks raised."""
    raw: DatasetDict
    provenance: dict
    warnings: list[str] = field(default_factory=list)


def synthetic_raw(seed: int, scale: float, pretrain_rows: int, people: int, cities: int) -> DatasetDict:
    corpus = generate_corpus(seed, scale, pretrain_rows, people, cities)
    return DatasetDict({split: Dataset.from_dict({"text": rows}) for split, rows in corpus.items()})


def hf_raw(name: str, config_name: str | None, revision: str | None) -> DatasetDict:
    """train/validation/test of a hub dataset; a pinned commit must be the one that was loaded."""
    try:
        raw = load_dataset(name, config_name, revision=revision)
    except Exception as err:  # the hub raises many types; all mean "could not get the data"
        raise hub_error(f"dataset {name}/{config_name}", "data.source: local with data.local_dir",
                        cause=err) from err
    missing = [split for split in FINETUNE_SPLITS if split not in raw]
    if missing:
        raise DataValidationError(
            f"dataset {name} (config {config_name}) has no {missing[0]} split (splits found: {', '.join(raw)}); "
            "choose a dataset and config (data.hf) with train, validation and test splits, or write the splits "
            "to files in data.local_dir")
    selected = DatasetDict({split: raw[split] for split in FINETUNE_SPLITS})
    loaded = hf_resolved_revision(selected, name, config_name)
    if revision and COMMIT.fullmatch(revision) and revision != loaded:
        # Offline, datasets reloads the newest cached copy whatever revision was asked for.
        raise DataValidationError(
            f"dataset {name} (config {config_name}): data.hf.revision pins {revision} but revision {loaded} was "
            f"loaded (from {Path(selected['train'].cache_files[0]['filename']).parent}); without hub access "
            "datasets reloads the newest cached copy. Fetch the pinned revision with hub access, or delete the "
            "other cached copy")
    return selected


def hf_resolved_revision(raw: DatasetDict, name: str, config_name: str | None) -> str:
    """The hub commit a loaded dataset came from.

    `datasets` prepares a hub dataset into <HF_DATASETS_CACHE>/<name>/<config>/<version>/<commit>/, the
    commit being the one the hub resolved the requested revision (or main) to; offline, it reloads from that
    folder and takes the commit from its name. Every split's arrow files (Dataset.cache_files) lie in it."""
    folders = {Path(f["filename"]).parent for split in raw.values() for f in split.cache_files}
    if len(folders) != 1:
        raise DataValidationError(
            f"dataset {name} (config {config_name}): cannot tell which revision was loaded, its splits come from "
            f"{len(folders)} cache folders ({', '.join(sorted(map(str, folders))) or 'none, it is in memory'}); "
            "load it from the hub cache (HF_DATASETS_CACHE)")
    folder = folders.pop()
    if not COMMIT.fullmatch(folder.name):
        raise DataValidationError(
            f"dataset {name} (config {config_name}) was loaded from the cache folder {folder}, which is not named "
            "after a hub commit (written by an older datasets version?); delete it and load the dataset again "
            "with hub access, so the revision is known")
    return folder.name


def _local(directory: str, need_pretrain: bool = False) -> tuple[DatasetDict, dict[str, Path], list[str]]:
    """A folder with train/validation/test (+ optional pretrain) as .txt (one row per line) or .parquet
    (a string 'text' column). Every file is checked before `datasets` reads it."""
    files = local_split_files(directory, need_pretrain)
    warnings = [w for path in files.values() for w in check_local_file(path)]
    splits = {}
    for split, path in files.items():
        if path.suffix == ".parquet":
            splits[split] = load_dataset("parquet", data_files=str(path), split="train")
        else:
            # keep_linebreaks reproduces WikiText rows exactly, empty rows included.
            splits[split] = load_dataset("text", data_files=str(path), split="train", keep_linebreaks=True)
    return DatasetDict(splits), files, warnings


def load_corpus(source: str, *, seed: int, synthetic: dict, hf: dict, local_dir: str | None,
                max_length: int | None = None, packing: bool = False, need_pretrain: bool = False) -> Corpus:
    """Load the configured source and check every split (DataValidationError names the file or split).
    need_pretrain: the base model is pretrained here, so local data must have a pretrain split."""
    if source == "synthetic":
        raw = synthetic_raw(seed, synthetic["scale"], synthetic["pretrain_rows"], synthetic["people"],
                            synthetic["cities"])
        provenance = {"source": "synthetic", "generator": "qrepro.data.corpus.generate_corpus", "seed": seed,
                      **{k: synthetic[k] for k in ("scale", "pretrain_rows", "people", "cities")}}
        try:
            warnings = check_splits(raw, lambda split: f"synthetic corpus split {split}",
                                    "this is a bug in qrepro.data.corpus", max_length, packing)
        except DataValidationError as err:  # the generator's own output: an assertion, not a user error
            raise AssertionError(f"the synthetic corpus generator produced bad data: {err}") from err
        return Corpus(raw, provenance, warnings)
    if source == "hf":
        raw = hf_raw(hf["name"], hf["config"], hf["revision"])
        provenance = {"source": "hf", "dataset": hf["name"], "config": hf["config"],
                      "requested_revision": hf["revision"],
                      "revision": hf_resolved_revision(raw, hf["name"], hf["config"])}
        where = lambda split: f"dataset {hf['name']} (config {hf['config']}) split {split}"  # noqa: E731
        fix = ("choose a dataset and config (data.hf) whose splits hold their rows in a string 'text' column, "
               "or write the splits to files in data.local_dir")
        return Corpus(raw, provenance, check_splits(raw, where, fix, max_length, packing))
    if source in ("local", "bundled"):
        if not local_dir:
            raise DataValidationError("data.source is local but data.local_dir is not set; point it at a folder "
                                      "holding train, validation and test as .txt or .parquet files")
        raw, files, warnings = _local(local_dir, need_pretrain)
        if source == "bundled":  # the folder rule carve_bundled wrote, named relative to the working directory
            provenance = {"source": "bundled", "carve": read_carve_record(local_dir),
                          "files": {split: path.name for split, path in files.items()}}
        else:
            provenance = {"source": "local", "local_dir": str(Path(local_dir).resolve()),
                          "files": {split: path.name for split, path in files.items()}}
        warnings += check_splits(raw, lambda split: str(files[split]), "give the split a string 'text' column",
                                 max_length, packing)
        return Corpus(raw, provenance, warnings)
    raise ValueError(f"data.source must be bundled, synthetic, hf or local, not {source!r}")


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

    return tokenized.map(group_texts, batched=True, batch_size=PACKING_ROWS)


def tokenize_splits(raw: DatasetDict, tokenizer, max_length: int, packing: bool) -> DatasetDict:
    fn = tokenize_packed if packing else tokenize_padded
    return DatasetDict({split: fn(raw[split], tokenizer, max_length) for split in FINETUNE_SPLITS})


def split_stats(raw: DatasetDict, tokenized: DatasetDict, tokenizer, max_length: int,
                packing: bool) -> dict[str, dict[str, int]]:
    """Per split: raw rows (empty included, as Table 1 counts), non-empty rows, token counts, and what max_length
    cuts: rows longer than it (padding protocol) and the tokens the samples leave out."""
    stats = {}
    for split in FINETUNE_SPLITS:
        masks = tokenized[split]["attention_mask"]
        real = sum(sum(m) for m in masks)
        total = sum(len(m) for m in masks)
        lengths = [len(ids) for ids in tokenizer(list(non_empty(raw[split])["text"]))["input_ids"]]
        stats[split] = {"rows": raw[split].num_rows,
                        "non_empty_rows": len(lengths),
                        "samples": tokenized[split].num_rows,
                        "tokens": real,
                        "tokens_with_padding": total,
                        "untruncated_tokens": sum(lengths),
                        "truncated_rows": 0 if packing else sum(n > max_length for n in lengths)}
    return stats


def save(ds: DatasetDict, path: str | os.PathLike) -> None:
    ds.save_to_disk(str(path))


def save_corpus(corpus: Corpus, path: str | os.PathLike) -> None:
    """Write into a temporary folder beside `path` and move it into place only when complete, so a failure
    leaves no partial output behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the output gets the usual permissions
    try:
        corpus.raw.save_to_disk(str(tmp))
        (tmp / PROVENANCE_FILE).write_text(json.dumps(corpus.provenance, indent=2, sort_keys=True) + "\n")
        if path.exists():
            shutil.rmtree(path)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_provenance(path: str | os.PathLike) -> dict:
    return json.loads((Path(path) / PROVENANCE_FILE).read_text())
