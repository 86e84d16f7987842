"""Everything the report reads, loaded from results/ and validated: metric files and paper values."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from qrepro.metrics_io import read_metric


@dataclass
class MetricStore:
    """Metric records keyed by (scope, metric); every access names the file it came from."""
    records: dict[tuple[str, str], dict] = field(default_factory=dict)
    paths: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def load(cls, paths: list[str]) -> "MetricStore":
        store = cls()
        for path in paths:
            record = read_metric(path)
            key = (Path(path).parent.name, record["metric"])
            store.records[key], store.paths[key] = record, str(path)
        return store

    def has(self, scope: str, metric: str) -> bool:
        return (scope, metric) in self.records

    def value(self, scope: str, metric: str):
        try:
            return self.records[(scope, metric)]["value"]
        except KeyError as err:
            raise KeyError(f"the report needs results/metrics/{scope}/{metric}.json, which was not given") from err

    def record(self, scope: str, metric: str) -> dict:
        return self.records[(scope, metric)]


def load_paper_values(path: str) -> dict[str, dict]:
    entries = yaml.safe_load(Path(path).read_text())["values"]
    values = {}
    for entry in entries:
        missing = {"id", "table", "row", "column", "value", "unit"} - entry.keys()
        if missing:
            raise ValueError(f"{path}: entry {entry} lacks {sorted(missing)}")
        if entry["id"] in values:
            raise ValueError(f"{path}: duplicate id {entry['id']}")
        values[entry["id"]] = entry
    return values


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON (truncated?): {err}") from err
