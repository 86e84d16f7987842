"""Input data checked at the door (issue 13): each bad split fails the corpus rule with one message naming the
file, the problem and the fix, and nothing is left in results/data. Plus the data card on real-shaped text."""
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, copy_workflow, snakemake
from qrepro.data.checks import (DataValidationError, check_parquet_file, check_rows, check_text_file, local_split_files,
                                long_rows_warning, rows_sha256)
from qrepro.metrics_io import read_metric

FIXTURE = ROOT / "tests/fixtures/wikitext_sample"
GOOD = " = Heading = \n \n A paragraph of text . \n"


def _folder(tmp_path, **files) -> Path:
    """A data.local_dir with good train/validation/test/pretrain .txt files, some replaced:
    name=bytes|DataFrame|None."""
    folder = tmp_path / "data"
    folder.mkdir()
    for split in ("train", "validation", "test", "pretrain"):
        (folder / f"{split}.txt").write_text(GOOD)
    for name, content in files.items():
        name = name.replace("_", ".")
        if content is None:
            (folder / name).unlink()
        elif isinstance(content, pd.DataFrame):
            content.to_parquet(folder / name)
        else:
            (folder / name).write_bytes(content)
    return folder


def _raises(fn, *args) -> str:
    with pytest.raises(DataValidationError) as err:
        fn(*args)
    return str(err.value)


# --- the check functions -----------------------------------------------------------------------------------

def test_text_file_checks_name_the_file_the_place_and_the_fix(tmp_path):
    empty = tmp_path / "train.txt"
    empty.write_bytes(b"")
    assert _raises(check_text_file, empty) == (
        f"{empty} is empty (0 bytes); each split needs at least one non-empty row: put the text in it, "
        "one row per line")

    latin1 = tmp_path / "test.txt"
    latin1.write_bytes(b" = A = \n \n Caf\xe9 au lait . \n")  # 'é' in Latin-1: 8 + 2 + 4 bytes in: line 3
    message = _raises(check_text_file, latin1)
    assert message.startswith(f"{latin1} is not valid UTF-8: byte 0xe9 at byte offset 14 (line 3, byte 5 of "
                              "the line) cannot be decoded")
    assert "re-encode the file as UTF-8" in message

    utf16 = tmp_path / "validation.txt"
    utf16.write_bytes(" = A = \n".encode("utf-16-le"))  # ' ' is 20 00: the first NUL is byte 1
    assert _raises(check_text_file, utf16).startswith(
        f"{utf16} looks binary, not text: NUL byte at byte offset 1 (line 1)")

    control = tmp_path / "pretrain.txt"
    control.write_bytes(b"\x1b\x01" * 10 + b"text\n" * 36)  # 20 control bytes of 200: 10 %
    assert _raises(check_text_file, control) == (
        f"{control} looks binary, not text: 20 of its 200 bytes are control bytes (more than 5%); a .txt split "
        "must be plain UTF-8 text, one row per line")

    ok = tmp_path / "ok.txt"
    ok.write_text(" Tōkyō ( 東京 ) – é \t tab \r\n")
    assert check_text_file(ok) == []
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf = A = \n")
    assert check_text_file(bom) == [f"{bom} starts with a UTF-8 byte-order mark, which stays in the first "
                                    "row's text (remove it to keep the row as written)"]


def test_parquet_checks_name_the_columns_found(tmp_path):
    no_text = tmp_path / "validation.parquet"
    pd.DataFrame({"content": ["a"], "id": [1]}).to_parquet(no_text)
    assert _raises(check_parquet_file, no_text) == (
        f"{no_text} has no 'text' column (columns found: content, id); rename the column that holds the rows "
        "to 'text'")
    numbers = tmp_path / "train.parquet"
    pd.DataFrame({"text": [1, 2]}).to_parquet(numbers)
    assert _raises(check_parquet_file, numbers).startswith(f"{numbers} column 'text' holds int64, not strings")
    not_parquet = tmp_path / "test.parquet"
    not_parquet.write_text(GOOD)
    assert _raises(check_parquet_file, not_parquet).startswith(f"{not_parquet} is not a readable parquet file (")


def test_split_files_missing_or_ambiguous(tmp_path):
    folder = _folder(tmp_path, validation_txt=None, pretrain_txt=None)
    assert _raises(local_split_files, folder) == (
        f"data.local_dir {folder} has no validation.txt or validation.parquet; add the validation split as one "
        "of them")
    (folder / "validation.txt").write_text(GOOD)
    pd.DataFrame({"text": ["x"]}).to_parquet(folder / "train.parquet")
    assert _raises(local_split_files, folder) == (
        f"data.local_dir {folder} has both train.txt and train.parquet; keep only the one that holds the split")
    (folder / "train.parquet").unlink()
    assert local_split_files(folder) == {s: folder / f"{s}.txt" for s in ("train", "validation", "test")}
    assert _raises(local_split_files, folder, True).startswith(
        f"data.local_dir {folder} has no pretrain.txt or pretrain.parquet, which model.source: pretrain needs")
    (folder / "pretrain.txt").write_text(GOOD)
    assert local_split_files(folder, True)["pretrain"] == folder / "pretrain.txt"


def test_row_checks():
    assert _raises(check_rows, ["\n", " \n", "\t\n"], "x/train.txt") == (
        "x/train.txt has 3 rows and every one is blank (only whitespace); each split needs at least one non-empty "
        "row: put the split's text in it")
    assert _raises(check_rows, ["a", None, "b", None], "x/test.parquet") == (
        "x/test.parquet has 2 rows whose text is null (first: row 2, counting from 1); drop them or replace them "
        "with empty strings")
    assert _raises(check_rows, [], "x/test.parquet").startswith("x/test.parquet has no rows")
    check_rows(["", " A row . \n"], "fine")


def test_long_rows_are_counted_against_max_length():
    # max_length 64: the limit is 2 x 64 tokens x 4 characters = 512 characters
    rows = ["a" * 512, "", "b" * 513, "c" * 40, "d" * 2000]
    assert long_rows_warning(rows, "train.txt", 64) == (
        "train.txt: 2 of 4 non-empty rows longer than 512 characters (about 2 x data.max_length=64 tokens at ~4 "
        "characters per token; longest: row 5 counting from 1, 2000 characters); truncation to max_length drops "
        "most of each. Raise data.max_length, split those rows, or set data.packing: true")
    assert long_rows_warning(rows[:2], "train.txt", 64) is None


def test_row_hash_is_sha256_of_rows_each_ended_by_0xff():
    assert rows_sha256(["a\n", "", "é"]) == hashlib.sha256(b"a\n\xff\xff\xc3\xa9\xff").hexdigest()
    assert rows_sha256([]) == hashlib.sha256(b"").hexdigest() != rows_sha256([""])
    assert rows_sha256(["ab", "c"]) != rows_sha256(["a", "bc"])


def test_synthetic_corpus_passes_the_same_checks_and_a_broken_one_is_an_assertion(monkeypatch):
    from qrepro.data import splits
    small = dict(scale=0.01, pretrain_rows=200, people=12, cities=4)
    corpus = splits.load_corpus("synthetic", seed=3, synthetic=small, hf={}, local_dir=None, max_length=64)
    assert {s: corpus.raw[s].num_rows > 0 for s in ("train", "validation", "test", "pretrain")} == dict.fromkeys(
        ("train", "validation", "test", "pretrain"), True)
    real = splits.generate_corpus
    monkeypatch.setattr(splits, "generate_corpus", lambda *a: {**real(*a), "validation": ["\n", ""]})
    with pytest.raises(AssertionError, match=r"synthetic corpus generator produced bad data: synthetic corpus "
                                             r"split validation has 2 rows and every one is blank"):
        splits.load_corpus("synthetic", seed=3, synthetic=small, hf={}, local_dir=None)


# --- through the Snakemake CLI: the corpus rule refuses, nothing is left behind ------------------------------

@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("validation"))


# Files replaced in a good folder, the file named, the problem stated after it: one case per kind of check (a text
# file's bytes, a parquet split's rows, the split set, a split's rows after loading, the pretraining split the
# config needs). Every message of each check function is tested above, without Snakemake.
BAD_INPUTS = {
    "latin1_test": (dict(test_txt=b"a" * 5000 + b"\xff\n"), "test.txt",
                    "is not valid UTF-8: byte 0xff at byte offset 5000 (line 1, byte 5001 of the line) "
                    "cannot be decoded (invalid start byte); re-encode the file as UTF-8"),
    "parquet_null_rows": (dict(test_txt=None, test_parquet=pd.DataFrame({"text": ["a", None, None]})),
                          "test.parquet", "has 2 rows whose text is null (first: row 2, counting from 1)"),
    "blank_train": (dict(train_txt=b"\n \n\t\n"), "train.txt", "has 3 rows and every one is blank "
                    "(only whitespace); each split needs at least one non-empty row"),
    "missing_validation": (dict(validation_txt=None), "", "has no validation.txt or validation.parquet; add the "
                           "validation split as one of them"),
    # configs/test.yaml pretrains the base model here, so the pretraining split is required up front
    "missing_pretrain": (dict(pretrain_txt=None), "", "has no pretrain.txt or pretrain.parquet, which "
                         "model.source: pretrain needs"),
}


@pytest.mark.slow  # runs Snakemake beyond -n (conftest: MarkItSlow)
@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_fails_the_corpus_rule_with_one_message(workflow, tmp_path, case):
    files, name, problem = BAD_INPUTS[case]
    folder = _folder(tmp_path, **files)
    override = tmp_path / "local.yaml"
    override.write_text(f"data:\n  source: local\n  local_dir: {folder}\n")
    result = snakemake(workflow, "--configfile", "configs/test.yaml", str(override), "--cores", "1",
                       "results/data/tokenized", check=False)
    assert result.returncode != 0
    where = str(folder / name) if name else f"data.local_dir {folder}"
    expected = f"failed, see results/logs/corpus.log: {where} {problem}"
    assert expected in result.stderr, result.stderr[-3000:]
    assert result.stderr.count("failed, see ") == 1
    assert "DataValidationError" in (workflow / "results/logs/corpus.log").read_text()
    left = sorted(p.relative_to(workflow) for p in (workflow / "results/data").rglob("*")) \
        if (workflow / "results/data").exists() else []
    assert left == [], left


# --- real-shaped text: the data card, and the whole DAG --------------------------------------------------------

def _fixture_rows(split: str) -> list[bytes]:
    return (FIXTURE / f"{split}.txt").read_bytes().splitlines(keepends=True)


def _card(workdir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((workdir / "results/metrics/data_card").glob("*.json"))}


def _data_card_metrics() -> list[str]:
    """The data card's metrics as the catalogue declares them (paper/metrics.yaml)."""
    from qrepro import catalogue
    return [Path(path).stem for path in catalogue.load(ROOT / "paper/metrics.yaml").outputs("data_card")]


def _local_yaml(workdir: Path) -> str:
    path = workdir / "fixture.yaml"
    path.write_text(f"data:\n  source: local\n  local_dir: {FIXTURE}\n")
    return str(path)


CARD = "results/metrics/data_card"


@pytest.mark.slow  # runs Snakemake beyond -n (conftest: MarkItSlow)
def test_data_card_is_deterministic_and_matches_the_files(tmp_path):
    runs = []
    for name in ("one", "two"):
        workdir = copy_workflow(tmp_path / name)
        snakemake(workdir, "--configfile", "configs/test.yaml", _local_yaml(workdir), "--cores", "2",
                  f"{CARD}/train_sha256.json")
        runs.append(workdir)
    first, second = (_card(w) for w in runs)
    assert sorted(first) == sorted(f"{m}.json" for m in _data_card_metrics())
    assert first == second  # byte-identical
    value = lambda name: read_metric(runs[0] / CARD / f"{name}.json")["value"]  # noqa: E731
    assert all(not read_metric(runs[0] / CARD / n)["timing"] for n in first)
    assert value("data_source") == "local" and value("data_location") == str(FIXTURE)
    assert value("data_revision") is None
    for split in ("train", "validation", "test", "pretrain"):
        lines = _fixture_rows(split)  # the .txt rows: lines with their line break, read without datasets
        assert value(f"{split}_rows") == len(lines)
        assert value(f"{split}_empty_rows") == sum(1 for line in lines if not line.strip())
        assert value(f"{split}_characters") == len((FIXTURE / f"{split}.txt").read_text(encoding="utf-8"))
        assert value(f"{split}_sha256") == hashlib.sha256(b"".join(line + b"\xff" for line in lines)).hexdigest()
    trained_on = _fixture_rows("train") + _fixture_rows("pretrain")
    assert value("tokenizer_corpus_sha256") == hashlib.sha256(b"".join(r + b"\xff" for r in trained_on)).hexdigest()
    assert value("tokenizer_sha256") == hashlib.sha256(
        (runs[0] / "results/tokenizer/tokenizer.json").read_bytes()).hexdigest()
    assert value("tokenizer_source") == "train" and value("tokenizer_revision") is None
    provenance = json.loads((runs[0] / "results/data/raw/provenance.json").read_text())
    assert provenance["files"] == {s: f"{s}.txt" for s in ("train", "validation", "test", "pretrain")}


@pytest.mark.slow  # runs Snakemake beyond -n (conftest: MarkItSlow)
def test_wikitext_shaped_fixture_runs_the_whole_dag(tmp_path):
    """data.source: local on the fixture (pretrain.txt feeds model.source: pretrain), trained and evaluated."""
    workdir = copy_workflow(tmp_path / "fixture")
    targets = ["results/metrics/full/train_steps.json", "results/metrics/qlora/train_steps.json",
               "results/metrics/dataset/train_samples.json", "results/metrics/dataset/train_non_empty_rows.json",
               "results/metrics/dataset/vocab_size.json",
               f"{CARD}/train_rows.json"] + [
        f"results/metrics/{m}/{name}.json" for m in ("base", "full", "qlora") for name in ("perplexity_paper",
                                                                                          "perplexity_token")]
    result = snakemake(workdir, "--configfile", "configs/test.yaml", _local_yaml(workdir), "--cores", "2", *targets,
                       timeout=1200)
    lines = _fixture_rows("train")
    long_rows = sum(1 for line in lines if len(line.decode()) > 2 * 4 * 64)
    non_empty = sum(1 for line in lines if line.strip())
    assert long_rows == 1
    assert (f"corpus warning: {FIXTURE / 'train.txt'}: {long_rows} of {non_empty} non-empty rows longer than 512 "
            "characters") in result.stderr
    metric = lambda path: read_metric(workdir / path)["value"]  # noqa: E731
    assert metric("results/metrics/dataset/train_samples.json") == len(lines) == metric(f"{CARD}/train_rows.json")
    assert metric("results/metrics/dataset/train_non_empty_rows.json") == non_empty
    assert metric("results/metrics/full/train_steps.json") == metric("results/metrics/qlora/train_steps.json") == 24
    vocab = metric("results/metrics/dataset/vocab_size.json")
    for model in ("base", "full", "qlora"):  # better than guessing uniformly over the vocabulary
        assert 1 < metric(f"results/metrics/{model}/perplexity_token.json") < vocab
