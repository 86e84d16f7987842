"""The paper as data: every number it publishes (paper/paper_values.yaml), each with its table, row, column and
unit. Shared layer: the tables, the claims, the MFU job and the tests read the paper's numbers from here; none
writes one down again."""
from __future__ import annotations

from pathlib import Path

import yaml

PAPER_VALUES = "paper/paper_values.yaml"
REQUIRED = {"id", "table", "row", "column", "value", "unit"}


def load_paper_values(path: str | Path = PAPER_VALUES) -> dict[str, dict]:
    """{id: entry} of every published number."""
    entries = yaml.safe_load(Path(path).read_text())["values"]
    values = {}
    for entry in entries:
        missing = REQUIRED - entry.keys()
        if missing:
            raise ValueError(f"{path}: entry {entry} lacks {sorted(missing)}")
        if entry["id"] in values:
            raise ValueError(f"{path}: duplicate id {entry['id']}")
        values[entry["id"]] = entry
    return values
