"""What the report shows of each finished sweep (`snakemake sweep`, rules/sweep.smk): its grid, the numbers the
prose names (templates/prose.j2, sweeps_lead and sweep_result), its table and its figure. Every number comes from
a file: the sweep's summary (results/sweeps/<sweep>/metrics/sweep/) and the chosen and recipe points' perplexities."""
from __future__ import annotations

from pathlib import Path

from markupsafe import Markup

from qrepro.metrics_io import MetricStore, read_metric
from qrepro.report.context import figure
from qrepro.report.numbers import Values
from qrepro.report.markup import RawLatex
from qrepro.sweep import Sweep


def sweep_context(entry: dict) -> dict:
    """One sweep for the templates. entry: rule render's params.sweeps item (grid, summary files, report files, each
    point's files). Its Values read "sweep/<metric>" (the summary) and "<variant>_<best|recipe>/<split>" (the
    perplexity files of each variant's chosen and recipe points)."""
    sweep = Sweep(**{**entry["sweep"], "variants": tuple(entry["sweep"]["variants"])})
    store = MetricStore.load(entry["summary"])
    roles = {}
    for variant in sweep.variants:
        details = store.record("sweep", f"best_point_{variant}")["details"]
        roles[variant] = {"best": details["point"], "recipe": details["recipe_point"]}
        for role, point in roles[variant].items():
            for split in ("validation", "test"):
                path = entry["files"][point][split]
                store.records[(f"{variant}_{role}", split)], store.paths[(f"{variant}_{role}", split)] = \
                    read_metric(path), path
    report = entry["report"]
    return {"name": sweep.name, "description": sweep.description, "variants": list(sweep.variants),
            "columns": sweep.columns, "config_keys": sweep.keys, "grid": sweep.values, "points": len(sweep.points),
            "roles": roles, "v": Values(store),
            "table": {"latex": RawLatex(Path(report["table.tex"]).read_text()),
                      "html": Markup(Path(report["table.html"]).read_text())},
            "figure": figure(report["figure.png"], report["figure.pdf"])}
