"""The shipped real text (data/wikitext-2): its digests and counts as the README states them, and the carve."""
import hashlib
import json
import re

import pytest

from conftest import ROOT
from qrepro.config_checks import merged_profile
from qrepro.data.bundled import carve, read_rows, resampling_clusters
from qrepro.data.tokenizer import train_bpe

BUNDLED = merged_profile(ROOT / "config.yaml")["data"]["bundled"]
FOLDER = ROOT / BUNDLED["dir"]
CHECKSUMS = dict(reversed(line.split()) for line in (FOLDER / "SHA256SUMS").read_text().splitlines())


def _titles(text: str) -> list[str]:
    """Article titles: a " = Title = " row between blank rows (WikiText's layout), found independently of the code."""
    return re.findall(r"(?:\A|^ \n)^ = ([^=].*?) = \n(?= \n)", text, flags=re.M)


def _article_openings(text: str) -> set[str]:
    """The first paragraph row after each article title: what identifies an article (titles can be all <unk>)."""
    return set(re.findall(r"^ = [^=].*? = \n \n( [^=\n].*)\n", text, flags=re.M))


def test_readme_states_the_files_digests_lines_and_articles():
    readme = (FOLDER / "README.md").read_text()
    for name in (BUNDLED["carved_file"], BUNDLED["test_file"]):
        data = (FOLDER / name).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        assert CHECKSUMS[name] == digest
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
        cells = [c.strip(" `") for c in row.split("|")[1:-1]]
        assert cells[1] == digest
        assert int(cells[2].replace(",", "")) == data.count(b"\n")
        assert int(cells[3]) == len(_titles(data.decode()))


@pytest.fixture(scope="module")
def carved(tmp_path_factory):
    out = tmp_path_factory.mktemp("carved")
    record = carve(FOLDER, BUNDLED["carved_file"], BUNDLED["test_file"], BUNDLED["shares"], CHECKSUMS, out)
    return out, record


def test_carve_cuts_only_at_article_headings_and_loses_nothing(carved):
    out, record = carved
    parts = [(out / f"{split}.txt").read_bytes() for split in ("pretrain", "train", "validation")]
    assert b"".join(parts) == (FOLDER / BUNDLED["carved_file"]).read_bytes()
    assert (out / "test.txt").read_bytes() == (FOLDER / BUNDLED["test_file"]).read_bytes()
    for part in parts[1:]:
        assert re.match(r" = [^=].* = \n", part.decode())  # each later split opens with an article's title
    lines = (FOLDER / BUNDLED["carved_file"]).read_bytes().count(b"\n")
    shares = list(BUNDLED["shares"].values())
    for split, share_before in (("train", shares[0]), ("validation", shares[0] + shares[1])):
        # the cut is the first heading at or after the share's row: no heading lies between the two
        first = record["splits"][split]["first_line"]
        assert first - 1 >= round(share_before * lines)
        between = read_rows(FOLDER / BUNDLED["carved_file"])[round(share_before * lines):first - 1]
        assert not _titles("".join(between))


def test_no_test_article_is_in_pretraining_or_fine_tuning(carved):
    out, _ = carved
    test_articles = _article_openings((out / "test.txt").read_text())
    assert len(test_articles) == 60
    for split in ("pretrain", "train", "validation"):
        assert test_articles.isdisjoint(_article_openings((out / f"{split}.txt").read_text()))


def test_a_changed_file_is_refused(tmp_path):
    (tmp_path / "valid.txt").write_bytes((FOLDER / "valid.txt").read_bytes() + b" extra\n")
    (tmp_path / "test.txt").write_bytes((FOLDER / "test.txt").read_bytes())
    with pytest.raises(ValueError, match="SHA-256"):
        carve(tmp_path, "valid.txt", "test.txt", BUNDLED["shares"], CHECKSUMS, tmp_path / "out")


def test_resampling_clusters_are_articles_or_else_rows():
    rows = [" \n", " = A = \n", " \n", " text \n", " = = Section = = \n", " more \n", " = x = \n", " \n", " = B = \n",
            " \n", " b \n"]
    # " = x = " inside a paragraph (no blank row before it) does not open an article
    # the blank row before the first heading belongs to the first article
    assert resampling_clusters(rows) == ([1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2], "article")
    assert resampling_clusters([" a \n", " b \n"]) == ([0, 1], "row")


def test_the_literal_unk_in_the_text_is_the_trained_bpes_unknown_token():
    """The tokenizer splits special tokens out before BPE: every literal <unk> of the text becomes one unk id."""
    rows = read_rows(FOLDER / BUNDLED["carved_file"])[:400]
    tokenizer = train_bpe(rows, 512)
    ids = tokenizer(" the <unk> lobster <unk>")["input_ids"]
    assert ids.count(tokenizer.unk_token_id) == 2
    assert tokenizer.convert_ids_to_tokens(ids).count("<unk>") == 2


@pytest.mark.slow
def test_the_default_data_stage_carves_the_bundled_text_and_records_it(tmp_path):
    """data.source: bundled (config.yaml) with the test profile's small tokenizer: the data card names the carve, its
    licence and the files' digests; Table 1's truncation shares match the rows' own token counts."""
    from transformers import AutoTokenizer
    from conftest import copy_workflow, snakemake
    from qrepro.metrics_io import read_metric
    workdir = copy_workflow(tmp_path / "bundled")
    (workdir / "bundled.yaml").write_text("data: {source: bundled}\n")
    card = lambda name: read_metric(workdir / f"results/metrics/data_card/{name}.json")["value"]  # noqa: E731
    table1 = lambda name: read_metric(workdir / f"results/metrics/dataset/{name}.json")["value"]  # noqa: E731
    snakemake(workdir, "--configfile", "configs/test.yaml", "bundled.yaml", "--cores", "2",
              "results/metrics/data_card/data_location.json", "results/metrics/dataset/train_truncated_rows_percent.json")
    assert card("data_source") == "bundled" and card("data_licence") == BUNDLED["licence"]
    assert set(card("data_files_sha256").split("; ")) == {f"{n} {CHECKSUMS[n]}" for n in ("valid.txt", "test.txt")}
    carved = json.loads((workdir / "results/data/carved/carve.json").read_text())
    for split, record in carved["splits"].items():
        assert f"{split} = {record['file']} lines {record['first_line']}-{record['last_line']}" in card("data_location")
        rows = read_rows(FOLDER / record["file"])[record["first_line"] - 1:record["last_line"]]
        assert card(f"{split}_rows") == len(rows)
    assert card("test_rows") == 4358
    tokenizer = AutoTokenizer.from_pretrained(workdir / "results/tokenizer")
    lengths = [len(tokenizer(row)["input_ids"]) for row in (workdir / "results/data/carved/train.txt").read_text().splitlines(
        keepends=True) if row.strip()]
    max_length = table1("max_seq_length")
    assert table1("train_truncated_rows_percent") == pytest.approx(100 * sum(n > max_length for n in lengths) / len(lengths))
    assert table1("train_truncated_tokens_percent") == pytest.approx(
        100 * sum(max(0, n - max_length) for n in lengths) / sum(lengths))
