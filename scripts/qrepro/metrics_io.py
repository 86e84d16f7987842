"""Reading and writing metric files: one JSON file per metric, validated on both sides."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import jsonschema

WORKFLOW_FILES = ("schemas/metric.schema.json",)  # read at run time (qrepro.dependencies)
SCHEMA_PATH = Path(__file__).resolve().parents[2] / WORKFLOW_FILES[0]
_SCHEMA = None


class MetricFileError(ValueError):
    """A metric file is missing, truncated or does not match schemas/metric.schema.json."""


def _schema() -> dict:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = json.loads(SCHEMA_PATH.read_text())
    return _SCHEMA


def metric_record(metric: str, variant: str, value: Any, unit: str, method: str,
                  inputs: Iterable[str], timing: bool = False, details: dict | None = None) -> dict:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"metric {metric} ({variant}) is not finite: {value}")
    record = {
        "metric": metric,
        "variant": variant,
        "value": value,
        "unit": unit,
        "method": method,
        "inputs": sorted(str(i) for i in inputs),
        "timing": bool(timing),
    }
    if details:
        record["details"] = details
    jsonschema.validate(record, _schema())
    return record


def write_metric(path: str | os.PathLike, metric: str, variant: str, value: Any, unit: str,
                 method: str, inputs: Iterable[str], timing: bool = False,
                 details: dict | None = None) -> dict:
    """Validate and write one metric file atomically (write to a temp file, then rename)."""
    record = metric_record(metric, variant, value, unit, method, inputs, timing, details)
    path = Path(path)
    if path.stem != metric:
        raise ValueError(f"metric file {path} must be named after its metric {metric!r}")
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


def write_metrics(directory: str | os.PathLike, variant: str, records: dict[str, dict]) -> None:
    """Write several metrics: ``records`` maps metric name to the keyword arguments of write_metric."""
    for name, fields in records.items():
        write_metric(Path(directory) / f"{name}.json", name, variant, **fields)
