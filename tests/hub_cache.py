"""A Hugging Face cache built for the tests, offline (tests/test_hub_offline.py says how and why it is laid out
this way): a tiny model (tests/tiny_models.py; a Qwen2 unless a test asks for another family) and its tokenizer under a
hub id at a fixed revision, and WikiText-shaped data."""
import hashlib
import os
import shutil
from pathlib import Path

import pandas as pd

from conftest import ROOT
from tiny_models import save_tiny_model, tiny_arch

FIXTURE = ROOT / "tests/fixtures/wikitext_sample"
# not the paper's LLaMA: the paper profile's whole hub run (tests/test_hub_offline.py) is also the suite's whole run
# of another causal-LM family, one DAG for both
MODEL_FAMILY = "qwen2"
MODEL_REV = "0123456789abcdef0123456789abcdef01234567"
DATA_REV = "fedcba9876543210fedcba9876543210fedcba98"
OTHER_REV = "1111111111111111111111111111111111111111"
SPLITS = ("train", "validation", "test")
TINY = tiny_arch(MODEL_FAMILY)  # the cached model's architecture (vocabulary: the tokenizer's, 512)


def model_id(family: str = MODEL_FAMILY) -> str:
    return f"qrepro-test/tiny-{family}"


MODEL_ID = model_id()


def shape(family: str = MODEL_FAMILY) -> dict:
    """The family's tiny shape, as a loaded model's config reports it."""
    return {k: tiny_arch(family)[k] for k in (
        "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size")}


def hf_rows(split: str) -> list[str]:
    """WikiText rows as the hub dataset holds them: '' for a blank line, else the line with its line break."""
    lines = (FIXTURE / f"{split}.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    return ["" if not line.strip() else line for line in lines]


def _hub_repo(hub: Path, repo_id: str, revision: str, folder: Path) -> None:
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in sorted(folder.iterdir()):
        blob = hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, repo / "blobs" / blob)
        (snapshot / file.name).symlink_to(Path("../../blobs") / blob)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)


def _dataset_cache(cache: Path, work: Path, configs: dict[str, dict[str, pd.DataFrame]]) -> None:
    from datasets import load_dataset_builder

    repo = work / "wikitext"  # the folder name becomes the dataset name, as the hub id does
    readme = ["---", "configs:"]
    for config, splits in configs.items():
        readme += [f"- config_name: {config}", "  data_files:"]
        for split, frame in splits.items():
            (repo / config).mkdir(parents=True, exist_ok=True)
            frame.to_parquet(repo / config / f"{split}-00000-of-00001.parquet")
            readme += [f"  - split: {split}", f"    path: {config}/{split}-00000-of-00001.parquet"]
    (repo / "README.md").write_text("\n".join(readme + ["---", ""]))
    for config in configs:
        builder = load_dataset_builder(str(repo), config, cache_dir=str(cache))
        builder.download_and_prepare()
        prepared = Path(builder.cache_dir)
        prepared.rename(prepared.parent / DATA_REV)
    shutil.rmtree(repo)


def build_hf_cache(root: Path, family: str = MODEL_FAMILY) -> dict:
    """A Hugging Face home under root: the family's tiny model at MODEL_REV in the hub cache (as
    qrepro-test/tiny-<family>), WikiText-shaped data (and three broken variants of it) in the datasets cache, and the
    environment that points a process at it, offline."""
    from qrepro.data.tokenizer import train_bpe

    stage = root / "stage"
    tokenizer = train_bpe((FIXTURE / "train.txt").read_text(encoding="utf-8").splitlines(keepends=True), 512)
    tokenizer.save_pretrained(stage)
    save_tiny_model(stage, family, len(tokenizer), seed=0, bos=tokenizer.bos_token_id, eos=tokenizer.eos_token_id)
    _hub_repo(root / "hub", model_id(family), MODEL_REV, stage)
    good = {split: pd.DataFrame({"text": hf_rows(split)}) for split in SPLITS}
    _dataset_cache(root / "datasets", root, {
        "wikitext-2-raw-v1": good,
        "no-text": {split: frame.rename(columns={"text": "content"}) for split, frame in good.items()},
        "no-validation": {"train": good["train"], "test": good["test"]},
        "blank-test": {**good, "test": pd.DataFrame({"text": ["", " ", "\n"]})},
    })
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(root), HF_HUB_CACHE=str(root / "hub"),
               HF_DATASETS_CACHE=str(root / "datasets"), PYTHONWARNINGS="ignore")
    return {"root": root, "env": env, "stage": stage, "tokenizer": tokenizer, "family": family}
