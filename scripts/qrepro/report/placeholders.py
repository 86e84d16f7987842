"""How the report prints a number, and the placeholders that put numbers into text (claims, table captions and
notes) so that no number is written into a text by hand.

    {scope/metric|FORMAT}        the value of results/metrics/<scope>/<metric>.json
    {paper:ID|FORMAT}            a value the paper publishes (paper/paper_values.yaml)
    {method:scope/metric}        a metric file's method text
    {details:scope/metric:key}   one entry of a metric file's details
    {reference}                  the name of the GPU reference run a table is built from
"""
from __future__ import annotations

import re
from typing import Any

from qrepro.report.store import MetricStore

DASH = "—"
VALUE = re.compile(r"\{([a-z0-9_]+)/([a-z0-9_]+)\|([a-z0-9+]+)\}")
PLACEHOLDER = re.compile(r"\{(?:(?P<paper>paper:[a-z0-9_]+\|[a-z0-9+]+)|(?P<method>method:[a-z0-9_]+/[a-z0-9_]+)"
                         r"|(?P<details>details:[a-z0-9_]+/[a-z0-9_]+:[a-z0-9_]+)|(?P<reference>reference)"
                         r"|(?P<value>[a-z0-9_]+/[a-z0-9_]+\|[a-z0-9+]+))\}")


def fmt(value: Any, kind: str) -> str:
    """Display format of a value; kind names how the report prints that quantity."""
    if value is None:
        return DASH
    if kind == "text" or isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if kind == "int":
        return f"{int(round(value)):,}"
    if kind == "tflops":  # a FLOP count printed in TFLOPs
        return f"{value / 1e12:,.4g}"
    if kind == "sci":
        return f"{value:.3e}"
    if kind.startswith("+f"):  # signed
        return f"{value:+,.{int(kind[2:])}f}"
    if kind.startswith("f"):
        return f"{value:,.{int(kind[1:])}f}"
    if kind == "g":
        return f"{value:.4g}"
    raise ValueError(f"unknown format {kind!r}")


def fill(text: str, m: MetricStore, paper: dict | None = None, reference: str | None = None) -> str:
    """Every placeholder of text replaced (whitespace collapsed: texts are written folded in YAML)."""
    def one(match: re.Match) -> str:
        kind = match.lastgroup
        body = match[kind]
        if kind == "value":
            key, form = body.split("|")
            return fmt(m.value(*key.split("/")), form)
        if kind == "paper":
            key, form = body.removeprefix("paper:").split("|")
            if paper is None or key not in paper:
                raise KeyError(f"{{{body}}}: no paper value {key!r} (paper/paper_values.yaml)")
            return fmt(paper[key]["value"], form)
        if kind == "method":
            return m.record(*body.removeprefix("method:").split("/"))["method"]
        if kind == "details":
            key, entry = body.removeprefix("details:").rsplit(":", 1)
            return fmt(m.record(*key.split("/")).get("details", {}).get(entry), "text")  # absent: a dash
        if reference is None:
            raise KeyError("{reference} is only defined in a table built from a reference run")
        return reference
    return PLACEHOLDER.sub(one, " ".join(text.split()))


def value_placeholders(text: str) -> list[tuple[str, str]]:
    """The (scope, metric) of every {scope/metric|FORMAT} in text."""
    return [(scope, metric) for scope, metric, _ in VALUE.findall(text)]
