"""The bundled real text (data/wikitext-2): one file carved at top-level article headings into the pretraining,
train and validation splits, another kept whole as the test split; written as a data.source: local folder."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

CARVED_SPLITS = ("pretrain", "train", "validation")  # in file order: each takes the next share of the carved file
CARVE_RECORD = "carve.json"
# WikiText's top-level heading row: " = Title = " (a section is " = = Section = = ")
_ARTICLE_HEADING = re.compile(r" = [^=](?:.*[^=])? = ")


def article_starts(rows: list[str]) -> list[int]:
    """Indices of the rows that open an article: " = Title = " with a blank row (or the file's edge) on each side,
    as WikiText sets its headings (a formula row such as " = 1 <unk> and <unk> C = " inside a paragraph is not one)."""
    blank = lambda i: i < 0 or i >= len(rows) or not rows[i].strip()  # noqa: E731
    return [i for i, row in enumerate(rows)
            if _ARTICLE_HEADING.fullmatch(row.rstrip("\n")) and blank(i - 1) and blank(i + 1)]


def article_ids(rows: list[str]) -> list[int]:
    """Each row's article, counted from 1 at every heading; rows before the first heading (WikiText's files open with
    a blank row) belong to the first article."""
    starts, ids, current = set(article_starts(rows)), [], 0
    for i in range(len(rows)):
        current += i in starts
        ids.append(max(current, 1))
    return ids


def resampling_clusters(rows: list[str]) -> tuple[list[int], str]:
    """Each row's cluster for a bootstrap that keeps neighbouring text together, and the cluster's name: its article
    where the rows hold at least two article headings, else the row itself."""
    ids = article_ids(rows)
    if len(set(ids)) >= 2:
        return ids, "article"
    return list(range(len(rows))), "row"


def carve_points(rows: list[str], shares: dict[str, float]) -> list[int]:
    """Row indices where each split after the first begins: the first article heading at or after the row its
    cumulative share reaches. Every split keeps at least one article."""
    starts = article_starts(rows)
    if not starts or starts[0] != _first_content_row(rows):
        raise ValueError("the carved file must begin with an article heading (' = Title = ')")
    points, cumulative = [], 0.0
    for split in CARVED_SPLITS[:-1]:
        cumulative += shares[split]
        target = round(cumulative * len(rows))
        after = [s for s in starts if s >= target and s > (points[-1] if points else starts[0])]
        if not after:
            raise ValueError(f"no article heading after row {target}: the shares leave the later splits empty")
        points.append(after[0])
    return points


def _first_content_row(rows: list[str]) -> int:
    return next(i for i, row in enumerate(rows) if row.strip())


def read_rows(path: Path) -> list[str]:
    """The file's rows split at line feeds only, each keeping its own, so joining them gives the bytes back."""
    text = path.read_bytes().decode("utf-8")
    return [row for row in re.split(r"(?<=\n)", text) if row]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def carve(source_dir: str | Path, carved_file: str, test_file: str, shares: dict[str, float],
          expected_sha256: dict[str, str], out_dir: str | Path) -> dict:
    """Write pretrain/train/validation/test.txt into out_dir (rows byte for byte as in the source files) and the
    record of the cut (carve.json); refuses source files whose SHA-256 differs from the expected one."""
    source, out = Path(source_dir), Path(out_dir)
    digests = {name: sha256(source / name) for name in (carved_file, test_file)}
    for name, digest in digests.items():
        if digest != expected_sha256.get(name):
            raise ValueError(f"{source / name} has SHA-256 {digest}, not the {expected_sha256.get(name)} that "
                             f"data.bundled.sha256 expects: restore the file from git (git checkout -- {source / name})")
    rows = read_rows(source / carved_file)
    points = carve_points(rows, shares)
    bounds = [0, *points, len(rows)]
    out.mkdir(parents=True, exist_ok=True)
    record = {"source_dir": str(source), "sha256": digests, "shares": shares, "splits": {}}
    for split, begin, end in zip(CARVED_SPLITS, bounds, bounds[1:]):
        (out / f"{split}.txt").write_bytes("".join(rows[begin:end]).encode("utf-8"))
        record["splits"][split] = {"file": carved_file, "first_line": begin + 1, "last_line": end,
                                   "articles": len(article_starts(rows[begin:end]))}
    test_rows = read_rows(source / test_file)
    (out / "test.txt").write_bytes((source / test_file).read_bytes())
    record["splits"]["test"] = {"file": test_file, "first_line": 1, "last_line": len(test_rows),
                                "articles": len(article_starts(test_rows))}
    (out / CARVE_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def read_carve_record(out_dir: str | Path) -> dict:
    return json.loads((Path(out_dir) / CARVE_RECORD).read_text())
