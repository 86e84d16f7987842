import re

from qrepro.data.corpus import WIKITEXT2_ROWS, generate_corpus, split_row_targets

ARGS = dict(scale=0.02, pretrain_rows=800, people=20, cities=6)
TITLE = re.compile(r"^ = [^=].* = \n$")
SECTION = re.compile(r"^ = = [^=].* = = \n$")


def test_same_seed_same_corpus_other_seed_differs():
    assert generate_corpus(seed=3, **ARGS) == generate_corpus(seed=3, **ARGS)
    assert generate_corpus(seed=3, **ARGS)["train"] != generate_corpus(seed=4, **ARGS)["train"]


def test_split_sizes_follow_wikitext2_proportions():
    corpus = generate_corpus(seed=1, **ARGS)
    assert {s: len(corpus[s]) for s in WIKITEXT2_ROWS} == split_row_targets(0.02) == {
        "train": 734, "validation": 75, "test": 87}
    assert len(corpus["pretrain"]) == 800


def test_rows_have_wikitext_layout():
    rows = generate_corpus(seed=1, **ARGS)["train"]
    assert any(TITLE.match(r) for r in rows) and any(SECTION.match(r) for r in rows)
    assert rows.count("") > len(rows) / 3  # WikiText separates every heading and paragraph with an empty row
    for row in rows:
        assert row == "" or (row.startswith(" ") and row.endswith(" \n")), repr(row)
    titles = [i for i, r in enumerate(rows) if TITLE.match(r)]
    assert all(rows[i - 1] == "" and rows[i + 1] == "" for i in titles if 0 < i < len(rows) - 1)


def _titles(rows):
    return {r.strip(" =\n") for r in rows if TITLE.match(r)}


def test_pretraining_entities_are_disjoint_and_test_facts_recur_in_train():
    corpus = generate_corpus(seed=1, scale=0.05, pretrain_rows=3000, people=40, cities=12)
    pretrain_text = "".join(corpus["pretrain"])
    train_text = "".join(corpus["train"])
    test_titles = _titles(corpus["test"])
    assert test_titles and not any(t in pretrain_text for t in test_titles)
    # every entity with a test article is also described in the training split
    assert sum(t in train_text for t in test_titles) == len(test_titles)
