"""Result files: one JSON file per metric, validated on both sides, and the store that reads them back.
Shared layer: every stage reads and writes metrics through this module. No torch."""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import jsonschema

from qrepro import seeds

WORKFLOW_FILES = ("schemas/metric.schema.json",)  # read at run time (qrepro.dependencies)
SCHEMA_PATH = Path(__file__).resolve().parents[2] / WORKFLOW_FILES[0]
# what the report writes after every number read from a file with contaminated: true (placeholders, tables, figures)
CONTAMINATED_MARK = "†"
_SCHEMA = None


def metric_key(ref) -> tuple[str, str]:
    """(scope, metric) from "scope/metric" (a metric file's name under results/metrics/) or an already split pair."""
    if not isinstance(ref, str):
        return tuple(ref)
    scope, slash, metric = ref.partition("/")
    if not slash or not scope or not metric or "/" in metric:
        raise ValueError(f"{ref!r} is not scope/metric")
    return scope, metric


class MetricFileError(ValueError):
    """A metric file is missing, truncated or does not match schemas/metric.schema.json."""


def _schema() -> dict:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = json.loads(SCHEMA_PATH.read_text())
    return _SCHEMA


def metric_record(metric: str, scope: str, value: Any, unit: str, method: str,
                  inputs: Iterable[str], timing: bool = False, details: dict | None = None,
                  interval: dict | None = None, seeds: dict | None = None, contaminated: bool = False) -> dict:
    """One metric file's content; scope is its folder under results/metrics/ (full, qlora, comparison, ...).
    contaminated: a timing every attempt of which observed outside load, or a value derived from one (the field is
    written only when true)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"metric {metric} ({scope}) is not finite: {value}")
    record = {
        "metric": metric,
        "scope": scope,
        "value": value,
        "unit": unit,
        "method": method,
        "inputs": sorted(str(i) for i in inputs),
        "timing": bool(timing),
    }
    if details:
        record["details"] = details
    if interval:
        record["interval"] = interval
    if seeds:
        record["seeds"] = seeds
    if contaminated:
        record["contaminated"] = True
    jsonschema.validate(record, _schema())
    return record


def write_record(path: str | os.PathLike, record: dict) -> dict:
    """Write one validated record atomically (a temp file, then rename), named after its metric."""
    path = Path(path)
    if path.stem != record["metric"]:
        raise ValueError(f"metric file {path} must be named after its metric {record['metric']!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return record


def read_metric(path: str | os.PathLike) -> dict:
    """Load a metric file; fail naming the file if it is truncated or malformed."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise MetricFileError(f"metric file {path} is missing") from err
    except json.JSONDecodeError as err:
        raise MetricFileError(f"metric file {path} is not valid JSON (truncated?): {err}") from err
    try:
        jsonschema.validate(record, _schema())
    except jsonschema.ValidationError as err:
        raise MetricFileError(f"metric file {path} does not match {SCHEMA_PATH.name}: {err.message}") from err
    if record["metric"] != path.stem:
        raise MetricFileError(f"metric file {path} holds metric {record['metric']!r}, not {path.stem!r}")
    return record


def render_method(spec: dict, fields: dict) -> str:
    """A catalogue method text filled with the values the job used (StrictUndefined: a missing field fails)."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)

    class Phrase:  # rendered only where the method shows it: a branch not taken needs none of its fields
        def __init__(self, text):
            self.template = env.from_string(text)

        def __str__(self):
            return self.template.render(**fields)

    phrases = {name: Phrase(text) for name, text in spec.get("phrases", {}).items()}
    return env.from_string(spec["method"]).render(**fields, **phrases)


def write_metrics(declared: dict[str, dict], records: dict[str, dict]) -> list[dict]:
    """Write a job's metric files. declared is the rule's `metrics` param (catalogue.declared: path -> the
    catalogue's scope, name, unit, method and timing); records maps each metric name to its value, inputs and
    optional details, plus method_fields (the values its method text names). The job must write exactly the
    declared metrics; unit, method and timing come from the catalogue, never from the job."""
    by_name = {}
    for path, spec in declared.items():
        if spec["name"] in by_name:
            raise ValueError(f"{spec['name']} is declared twice for one job: {by_name[spec['name']][0]} and {path}")
        by_name[spec["name"]] = (path, spec)
    missing, extra = sorted(set(by_name) - set(records)), sorted(set(records) - set(by_name))
    if missing or extra:
        raise ValueError(f"the job must write exactly its declared metrics (paper/metrics.yaml): "
                         f"missing {missing}, not declared {extra}")
    complete = {}  # every record is built and validated before the first file is written
    for name, record in records.items():
        path, spec = by_name[name]
        unknown = set(record) - {"value", "inputs", "details", "interval", "seeds", "method_fields", "contaminated"}
        if unknown:
            raise ValueError(f"metric {name}: {sorted(unknown)} come from the catalogue, not from the job")
        if not {"value", "inputs"} <= set(record):
            raise ValueError(f"metric {name}: a record needs its value and inputs")
        fields = {**spec.get("fields", {}), **record.get("method_fields", {})}
        timing = spec["timing"]
        if isinstance(timing, str):  # depends on how the value was obtained
            timing = {"True": True, "False": False}[render_method({"method": timing}, fields)]
        method = render_method(spec, fields)
        if record.get("seeds"):  # computed once per training seed: the value is their mean
            method = seeds.mean_method(name, record["value"], record["seeds"], method)
        complete[path] = metric_record(name, spec["scope"], record["value"], spec["unit"], method,
                                       record["inputs"], timing, record.get("details"), record.get("interval"),
                                       record.get("seeds"), bool(record.get("contaminated")))
    written = [write_record(path, record) for path, record in complete.items()]
    print(f"wrote {len(complete)} metric file(s): {', '.join(complete)}")  # in the job's log
    return written


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
            raise KeyError(f"results/metrics/{scope}/{metric}.json is needed here but was not given") from err

    def record(self, scope: str, metric: str) -> dict:
        return self.records[(scope, metric)]

    def contaminated(self, scope: str, metric: str) -> bool:
        """Whether the file is marked contaminated (schemas/metric.schema.json): the report marks its number."""
        return bool(self.records[(scope, metric)].get("contaminated"))


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
