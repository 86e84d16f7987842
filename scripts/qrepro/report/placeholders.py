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

from qrepro.metrics_io import CONTAMINATED_MARK, MetricStore

DASH = "—"
# CONTAMINATED_MARK follows every number read from a contaminated file (a timing whose every attempt observed
# outside load, or a value derived from one); templates/prose.j2 (contamination_legend) says what it means
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


def direction(value: float, above: str, below: str, same: str = "no different from") -> str:
    """The word a signed number needs: 'slower'/'faster', 'higher'/'lower'... read from the number itself."""
    return above if value > 0 else below if value < 0 else same


class Values:
    """Numbers read from the metric files a text names: v.f("comparison/compression_ratio_memory", "f2") is that
    file's value in the report's format. The prose (templates/prose.j2) calls these; fill's placeholders too."""

    def __init__(self, m: MetricStore):
        self.m = m

    def mark_symbol(self) -> str:
        """The contamination mark itself (for the legend, and for numbers the prose gets from elsewhere: claims)."""
        return CONTAMINATED_MARK

    def mark(self, key: str) -> str:
        """The contamination mark when the file is contaminated, else nothing: it follows the number."""
        return CONTAMINATED_MARK if self._record(key).get("contaminated") else ""

    def contaminated_files(self) -> list[str]:
        """Every contaminated file among those given, by path (the legend is shown only when there is one)."""
        return sorted(path for key, path in self.m.paths.items() if self.m.records[key].get("contaminated"))

    def _record(self, key: str) -> dict:
        return self.m.record(*key.split("/"))

    def _value(self, key: str):
        return self.m.value(*key.split("/"))

    def value(self, key: str):
        """The raw value (for a condition in the prose); a number shown in text goes through f, size or detail."""
        return self._value(key)

    def details(self, key: str) -> dict:
        return self._record(key).get("details", {})

    def scopes(self, prefix: str) -> list[str]:
        """The scopes among the files given that start with prefix, in order (published_<model>: Table 14's models)."""
        return sorted({scope for scope, _ in self.m.records if scope.startswith(prefix)})

    def f(self, key: str, kind: str, scale: float = 1) -> str:
        value = self._value(key)
        return fmt(value * scale if scale != 1 else value, kind) + self.mark(key)

    def size(self, key: str, kind: str) -> str:
        """The magnitude of a signed number; its sign is said in words (word)."""
        return fmt(abs(self._value(key)), kind) + self.mark(key)

    def word(self, key: str, above: str, below: str, same: str = "no different from") -> str:
        return direction(self._value(key), above, below, same)

    def method(self, key: str) -> str:
        return self._record(key)["method"]

    def interval(self, key: str) -> dict | None:
        """The file's uncertainty interval (low, high, level, method), or None (for a condition or its method)."""
        return self._record(key).get("interval")

    def interval_of(self, key: str, entry: str | None = None) -> dict:
        """The file's interval, or one its details hold (entry: e.g. test_set_interval)."""
        record = self._record(key)
        return record["details"][entry] if entry else record["interval"]

    def bound(self, key: str, side: str, kind: str, entry: str | None = None) -> str:
        """One end ("low" or "high") of the file's interval (or of details.<entry>), as a number is shown."""
        return fmt(self.interval_of(key, entry)[side], kind)

    def seeds(self, key: str) -> dict | None:
        """The file's values per training seed (n, seeds, values, mean, sd), or None with one seed."""
        return self._record(key).get("seeds")

    def detail(self, key: str, entry: str, kind: str = "text", scale: float = 1) -> str:
        value = self._record(key)["details"].get(entry, [])
        if isinstance(value, list):
            return ", ".join(map(str, value))
        return fmt(value * scale if scale != 1 else value, kind)

    def level(self, key: str) -> str:
        """The confidence level of the file's interval, in percent (95)."""
        return f"{100 * self._record(key)['interval']['level']:.0f}"

    def count(self, key: str, entry: str) -> str:
        """How many items a list in the file's details holds (details.saves_at_steps: the saves)."""
        return fmt(len(self._record(key)["details"][entry]), "int")

    def listed(self, key: str, entry: str) -> str:
        """The items of a list in the file's details, joined."""
        return ", ".join(map(str, self._record(key)["details"][entry]))

    def nested_value(self, key: str, entry: str):
        """A value deeper in the file's details: entry "observed_load.outside_cores_mean"."""
        value = self._record(key)["details"]
        for part in entry.split("."):
            value = value[part]
        return value

    def nested(self, key: str, entry: str, kind: str, scale: float = 1) -> str:
        value = self.nested_value(key, entry)
        return fmt(value * scale if scale != 1 else value, kind)


class PaperValues:
    """The paper's own numbers for the prose: pv.f("t10_change", "+f2") is paper/paper_values.yaml's t10_change."""

    def __init__(self, paper: dict[str, dict]):
        self.paper = paper

    def f(self, key: str, kind: str) -> str:
        if key not in self.paper:
            raise KeyError(f"no paper value {key!r} (paper/paper_values.yaml)")
        return fmt(self.paper[key]["value"], kind)


def parts(text: str, m: MetricStore, paper: dict | None = None) -> list[dict]:
    """text cut at its number placeholders, for a report that links each number to its source: {"text": ...},
    {"metric": "scope/metric", "kind": FORMAT} or {"paper": ID, "kind": FORMAT}. Joined, the parts print what fill()
    gives for the same text."""
    text = " ".join(text.split())
    found, at = [], 0
    for match in PLACEHOLDER.finditer(text):
        if match.lastgroup not in ("value", "paper"):
            continue
        found.append({"text": _substitute(text[at:match.start()], m, paper)})
        key, form = match[match.lastgroup].removeprefix("paper:").split("|")
        if match.lastgroup == "value":
            m.record(*key.split("/"))  # a missing file fails here, as it does in fill()
            found.append({"metric": key, "kind": form})
        else:
            if paper is None or key not in paper:
                raise KeyError(f"{match[0]}: no paper value {key!r} (paper/paper_values.yaml)")
            found.append({"paper": key, "kind": form})
        at = match.end()
    found.append({"text": _substitute(text[at:], m, paper)})
    return [part for part in found if part.get("text", True)]


def fill(text: str, m: MetricStore, paper: dict | None = None, reference: str | None = None) -> str:
    """Every placeholder of text replaced (whitespace collapsed: texts are written folded in YAML)."""
    return _substitute(" ".join(text.split()), m, paper, reference)


def _substitute(text: str, m: MetricStore, paper: dict | None = None, reference: str | None = None) -> str:
    v = Values(m)

    def one(match: re.Match) -> str:
        kind = match.lastgroup
        body = match[kind]
        if kind == "value":
            return v.f(*body.split("|"))
        if kind == "paper":
            key, form = body.removeprefix("paper:").split("|")
            if paper is None or key not in paper:
                raise KeyError(f"{{{body}}}: no paper value {key!r} (paper/paper_values.yaml)")
            return fmt(paper[key]["value"], form)
        if kind == "method":
            return v.method(body.removeprefix("method:"))
        if kind == "details":
            key, entry = body.removeprefix("details:").rsplit(":", 1)
            return fmt(m.record(*key.split("/")).get("details", {}).get(entry), "text")  # absent: a dash
        if reference is None:
            raise KeyError("{reference} is only defined in a table built from a reference run")
        return reference
    return PLACEHOLDER.sub(one, text)

