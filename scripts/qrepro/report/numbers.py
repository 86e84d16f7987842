"""How the report prints a number: fmt (the formats), direction (the word a signed number needs), and the values the
report's texts read (Values, PaperValues). Every text with numbers (the prose, table captions and row labels, claim
statements and evidence) is a Jinja template of the one prose language (qrepro.report.render): v.f("scope/metric",
FORMAT) for a metric file's value, pv.f("paper_value_id", FORMAT) for the paper's."""
from __future__ import annotations

from typing import Any

from qrepro.metrics_io import CONTAMINATED_MARK, MetricStore

DASH = "—"
# CONTAMINATED_MARK follows every number read from a contaminated file (a timing whose every attempt observed
# outside load, or a value derived from one); templates/prose.j2 (contamination_legend) says what it means


def fmt(value: Any, form: str) -> str:
    """Display format of a value; form names how the report prints that quantity (FORMAT in the catalogue)."""
    if value is None:
        return DASH
    if form == "text" or isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if form == "int":
        return f"{int(round(value)):,}"
    if form == "tflops":  # a FLOP count printed in TFLOPs
        return f"{value / 1e12:,.4g}"
    if form == "sci":
        return f"{value:.3e}"
    if form.startswith("+f"):  # signed
        return f"{value:+,.{int(form[2:])}f}"
    if form.startswith("f"):
        return f"{value:,.{int(form[1:])}f}"
    if form == "g":
        return f"{value:.4g}"
    raise ValueError(f"unknown format {form!r}")


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

    def f(self, key: str, form: str, scale: float = 1) -> str:
        value = self._value(key)
        return fmt(value * scale if scale != 1 else value, form) + self.mark(key)

    def size(self, key: str, form: str) -> str:
        """The magnitude of a signed number; its sign is said in words (word)."""
        return fmt(abs(self._value(key)), form) + self.mark(key)

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

    def bound(self, key: str, side: str, form: str, entry: str | None = None) -> str:
        """One end ("low" or "high") of the file's interval (or of details.<entry>), as a number is shown."""
        return fmt(self.interval_of(key, entry)[side], form)

    def seeds(self, key: str) -> dict | None:
        """The file's values per training seed (n, seeds, values, mean, sd), or None with one seed."""
        return self._record(key).get("seeds")

    def detail(self, key: str, entry: str, form: str = "text", scale: float = 1) -> str:
        value = self._record(key)["details"].get(entry, [])
        if isinstance(value, list):
            return ", ".join(map(str, value))
        return fmt(value * scale if scale != 1 else value, form)

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

    def nested(self, key: str, entry: str, form: str, scale: float = 1) -> str:
        value = self.nested_value(key, entry)
        return fmt(value * scale if scale != 1 else value, form)


class PaperValues:
    """The paper's own numbers for the prose: pv.f("t10_change", "+f2") is paper/paper_values.yaml's t10_change."""

    def __init__(self, paper: dict[str, dict]):
        self.paper = paper

    def f(self, key: str, form: str) -> str:
        if key not in self.paper:
            raise KeyError(f"no paper value {key!r} (paper/paper_values.yaml)")
        return fmt(self.paper[key]["value"], form)
