"""The metric catalogue, paper/metrics.yaml: every metric file the workflow writes and every table that shows one.

For each metric it says the scope (results/metrics/<scope>/<name>.json), the rule that writes it, the unit, the
method text (a Jinja2 template the writing job fills with the values it used) and whether it is a timing. Every
derived number is data there too: the comparisons (a formula and two metric files), Figure 2's radar (per
axis, the files each normalization reads) and the files a deriving rule such as mfu reads (`reads`). Snakemake
derives from it the metric targets, each rule's declared outputs and inputs, and what each job must write
(rules/common.smk); write_metrics checks a job writes exactly those. Shared layer, read at parse time: it imports
no stage of the pipeline and no torch.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jinja2
import yaml
from jinja2 import meta

from qrepro.derived import Comparison, RadarPoint, radar_points
from qrepro.metrics_io import metric_key

RESULTS = "results"
# results/metrics/<scope>/<name>.json; with several training seeds each seed's run writes its own under
# results/seeds/<seed>/, and results/metrics/ holds their aggregates; a sweep (rules/sweep.smk) writes its summary
# under results/sweeps/<sweep>/ and each point's files under results/sweeps/<sweep>/<point>/ (point: key~value/...)
METRIC_PATH = re.compile(rf"^{RESULTS}/(?:seeds/(?P<seed>\d+)/|sweeps/(?P<sweep>[^/]+)/(?:[^/]+~[^/]+/)*)?"
                         r"metrics/(?P<scope>[^/]+)/(?P<name>[^/]+)\.json$")
ARCHITECTURE_SCOPES = {"architecture", "structure", "paper_architecture", "paper_structure"}


@dataclass(frozen=True)
class MetricSpec:
    scope: str
    name: str
    rule: str
    unit: str
    method: str              # Jinja2 template; the job supplies its fields
    timing: bool | str       # a template rendering to True/False where it depends on how the value was obtained
    target: str = "metrics"  # the named target that builds it: metrics (every run) or memory (the probe)
    fields: dict = field(default_factory=dict)  # the group's expand values for this name (method fields too)
    reads: dict = field(default_factory=dict)   # {name: "scope/metric"} the writing job reads ({scope}: this scope)
    paper_way: bool = False  # measured as the paper measured it: only then may a paper value stand beside it

    @property
    def path(self) -> str:
        return f"{RESULTS}/metrics/{self.scope}/{self.name}.json"


# a table cell's source: a metric file (scaled: "*1e-12") or a hyperparameter as it ran ("#count" / "#join" a list)
CELL_SOURCE = re.compile(r"^(?:hp:(?P<variant>[a-z_]+)/(?P<key>\w+)(?:#(?P<aggregate>count|join))?"
                         r"|(?P<scope>\w+)/(?P<metric>\w+)(?:\*(?P<scale>[0-9.e+-]+))?)$")


@dataclass(frozen=True)
class CellSpec:
    """One table cell as the catalogue declares it, "SOURCE|FORMAT[|PAPER_ID]", parsed once."""
    text: str                        # as written in paper/metrics.yaml
    form: str                        # display format (qrepro.report.numbers.fmt)
    paper_id: str | None = None      # the paper value it stands beside
    scope: str | None = None         # a metric file's scope and name ...
    metric: str | None = None
    scale: float | None = None       # ... shown multiplied by this
    variant: str | None = None       # or a hyperparameter: results/train/<variant>/hyperparameters.json, key
    key: str | None = None
    aggregate: str | None = None     # count | join, for a list

    @classmethod
    def parse(cls, text: str) -> "CellSpec":
        source, form, *paper_id = text.split("|")
        match = CELL_SOURCE.match(source)
        if match is None or len(paper_id) > 1 or not form:
            raise CatalogueError(f"table cell {text!r}: not SOURCE|FORMAT[|PAPER_ID]")
        return cls(text, form, paper_id[0] if paper_id else None, match["scope"], match["metric"],
                   float(match["scale"]) if match["scale"] else None, match["variant"], match["key"],
                   match["aggregate"])

    @property
    def source(self) -> str:
        """The source as written, scale and aggregate left out: scope/metric, or hp:variant/key."""
        return f"hp:{self.variant}/{self.key}" if self.variant else f"{self.scope}/{self.metric}"

    @property
    def metric_key(self) -> tuple[str, str] | None:
        return None if self.variant else (self.scope, self.metric)


@dataclass(frozen=True)
class RowSpec:
    label: str                              # may hold placeholders (qrepro.report.numbers.fill)
    cells: dict[str, CellSpec]
    when: tuple[str, str] | None = None     # shown only where this metric file exists


@dataclass(frozen=True)
class TableSpec:
    """One table of the catalogue's `tables` section, parsed once: tables.py builds it, docs/metrics.md lists it."""
    number: int
    caption: str
    columns: list[str]
    rows: list[RowSpec]
    ratios: bool = True                     # false: no Ratio columns (a wide table)
    reference: bool = False                 # built from a committed GPU reference run's files

    @classmethod
    def from_data(cls, data: dict) -> "TableSpec":
        rows = []
        for row in data["rows"]:
            label, cells, when = (row[0], row[1], None) if isinstance(row, list) else (row["label"], row["cells"],
                                                                                       row.get("when"))
            unknown = set(cells) - set(data["columns"])
            if unknown:
                raise CatalogueError(f"table {data['number']}, row {label!r}: columns {sorted(unknown)} are not "
                                     f"among {data['columns']}")
            rows.append(RowSpec(label, {column: CellSpec.parse(text) for column, text in cells.items()},
                                metric_key(when) if when else None))
        return cls(data["number"], data["caption"], list(data["columns"]), rows, data.get("ratios", True),
                   data.get("reference", False))

    def cells(self):
        """(row, column, cell) of every cell."""
        return [(row, column, spec) for row in self.rows for column, spec in row.cells.items()]


class CatalogueError(ValueError):
    pass


class Catalogue:
    def __init__(self, data: dict, source: str = "paper/metrics.yaml"):
        self.source = source
        self.phrases: dict[str, str] = data.get("phrases", {})
        self._jinja = jinja2.Environment()  # only parses method texts, to find the phrases each one uses
        self.specs: dict[tuple[str, str], MetricSpec] = {}
        for group in data["groups"]:
            expand = group.get("expand", {})
            for scope, rule in group["scopes"].items():
                reads = {name: ref.format(scope=scope) for name, ref in group.get("reads", {}).items()}
                for pattern, entry in group["metrics"].items():
                    method = entry["method"]
                    if isinstance(method, dict):  # one text per scope
                        method = method[scope]
                    for fields in _expansions(pattern, expand):
                        self._add(MetricSpec(scope, pattern.format(**fields), rule, entry["unit"], method,
                                             entry.get("timing", False), group.get("target", "metrics"), fields,
                                             reads, bool(entry.get("paper_way", False))))
        for spec in self.specs.values():
            self._check_written(spec.reads.values(), f"rule {spec.rule}")
        self.comparisons = [Comparison.from_data(c) for c in data["comparisons"]]
        for c in self.comparisons:
            self._check_written(c.inputs(), f"comparison {c.name}")
            rule = "architecture_comparisons" if self.architecture_only(c) else "comparisons"
            self._add(MetricSpec("comparison", c.name, rule, c.unit, c.method, self._any_timing(c.inputs()),
                                 paper_way=all(self.specs[k].paper_way for k in c.inputs())))
        self.radar: dict = data.get("radar") or {}  # Figure 2: its axes and the files each normalization reads
        self.radar_points: list[RadarPoint] = radar_points(self.radar) if self.radar else []
        for point in self.radar_points:
            self._check_written(point.inputs(), f"radar point {point.name}")
            self._add(MetricSpec("comparison", point.name, "comparisons", "", point.method,
                                 self._any_timing(point.inputs())))
        self.tables: list[TableSpec] = [TableSpec.from_data(t) for t in data["tables"]]
        for table in self.tables:
            self._check_written([c.metric_key for _, _, c in table.cells() if c.metric_key],
                                f"table {table.number}")

    def _check_written(self, refs, reader: str) -> None:
        for ref in refs:
            scope_metric = metric_key(ref)
            if scope_metric not in self.specs:
                raise CatalogueError(f"{self.source}: {reader} reads {'/'.join(scope_metric)}, which no rule writes")

    def _add(self, spec: MetricSpec) -> None:
        key = (spec.scope, spec.name)
        if key in self.specs:
            raise CatalogueError(f"{self.source}: {spec.scope}/{spec.name} is declared twice")
        self.specs[key] = spec

    def _any_timing(self, keys) -> bool:
        """A comparison is a timing when one of its inputs is. An input whose timing depends on how it was
        obtained (a template) is refused: the comparison's flag could not be known here."""
        for key in keys:
            if isinstance(self.specs[key].timing, str):
                raise CatalogueError(f"{self.source}: {'/'.join(key)} is a timing or not depending on the run; "
                                     "no comparison may read it")
        return any(self.specs[k].timing for k in keys)

    @staticmethod
    def architecture_only(c: Comparison) -> bool:
        return all(scope in ARCHITECTURE_SCOPES for scope, _ in c.inputs())

    def comparisons_for(self, architecture_only: bool) -> list[Comparison]:
        return [c for c in self.comparisons if self.architecture_only(c) == architecture_only]

    def comparison_params(self, architecture_only: bool) -> list[dict]:
        """One comparisons job's comparisons as plain data (a rule param: editing one re-runs that job)."""
        return [asdict(c) for c in self.comparisons_for(architecture_only)]

    def comparison_inputs(self, architecture_only: bool) -> list[str]:
        """The metric files one comparisons job reads (the radar's too, for a run's comparisons)."""
        keys = {k for c in self.comparisons_for(architecture_only) for k in c.inputs()}
        if not architecture_only:
            keys |= {k for point in self.radar_points for k in point.inputs()}
        return [self.specs[k].path for k in sorted(keys)]

    def radar_params(self, architecture_only: bool) -> list[dict]:
        """One comparisons job's radar points as plain data (a rule param)."""
        return [] if architecture_only else [asdict(point) for point in self.radar_points]

    def reads(self, rule: str, scope: str) -> dict[str, str]:
        """{name: path} of the metric files a deriving rule reads for one scope (the group's `reads`)."""
        found = {tuple(sorted(s.reads.items())) for s in self.specs.values() if s.rule == rule and s.scope == scope}
        if len(found) != 1:
            raise CatalogueError(f"{self.source}: rule {rule} in scope {scope} must declare its reads once "
                                 f"(found {len(found)} different sets)")
        return {name: f"{RESULTS}/metrics/{ref}.json" for name, ref in found.pop()}

    def scopes(self, rule: str) -> list[str]:
        """The scopes a rule writes, in catalogue order (for a wildcard rule: the values its wildcard takes)."""
        return list(dict.fromkeys(s.scope for s in self.specs.values() if s.rule == rule))

    def paths(self, target: str = "metrics") -> list[str]:
        return [s.path for s in self.specs.values() if s.target == target]

    def outputs(self, rule: str, scope: str | None = None, root: str = RESULTS) -> list[str]:
        """The metric files a rule declares. With scope = a pattern holding one wildcard ("{variant}",
        "probe_{variant}"), the rule writes the same names into each matching scope: paths keep the wildcard.
        root: the run folder (results, or one training seed's results/seeds/<seed>)."""
        specs = [s for s in self.specs.values() if s.rule == rule]
        if not specs:
            raise CatalogueError(f"{self.source} names no metric written by rule {rule}")
        if scope is None:
            return [f"{root}/metrics/{s.scope}/{s.name}.json" for s in specs]
        pattern = re.compile("^" + re.sub(r"\\\{\w+\\\}", ".+", re.escape(scope)) + "$")
        by_scope: dict[str, list[str]] = {}
        for s in specs:
            if pattern.match(s.scope):
                by_scope.setdefault(s.scope, []).append(s.name)
        names = {tuple(v) for v in by_scope.values()}
        if len(names) != 1:
            raise CatalogueError(f"rule {rule}: scopes {sorted(by_scope)} matching {scope} do not write the same metrics")
        return [f"{root}/metrics/{scope}/{name}.json" for name in names.pop()]

    def declared(self, paths) -> dict[str, dict]:
        """{path: spec} for the metric files among a job's outputs: what write_metrics checks the job against.
        Phrases the methods use travel along, so a job needs nothing but its params."""
        declared = {}
        for path in map(str, paths):
            match = METRIC_PATH.match(path)
            if match:
                spec = self.specs.get((match["scope"], match["name"]))
                if spec is None:
                    raise CatalogueError(f"{path} is not in {self.source}")
                used = meta.find_undeclared_variables(self._jinja.parse(spec.method))
                declared[path] = {**asdict(spec), "phrases": {k: v for k, v in self.phrases.items() if k in used}}
        return declared


def _expansions(pattern: str, expand: dict[str, list]) -> list[dict]:
    """One set of fields per name a pattern stands for: "{split}_rows" -> train_rows, validation_rows, ..."""
    keys = [k for k in expand if "{" + k + "}" in pattern]
    return [dict(zip(keys, values)) for values in itertools.product(*(expand[k] for k in keys))]


def load(path: str | Path = "paper/metrics.yaml") -> Catalogue:
    return Catalogue(yaml.safe_load(Path(path).read_text()), str(path))


def markdown_reference(cat: Catalogue) -> str:
    """docs/metrics.md: every metric file, comparison and radar point of the catalogue, with the tables that show it
    (written by `snakemake docs`; a test keeps the committed file equal to this)."""
    shown: dict[str, list[int]] = {}
    for table in cat.tables:
        for _, _, spec in table.cells():
            if spec.metric_key and table.number not in shown.setdefault(spec.source, []):
                shown[spec.source].append(table.number)

    def tables(scope: str, name: str) -> str:
        return ", ".join(map(str, shown.get(f"{scope}/{name}", []))) or "—"

    def cell(text: str) -> str:
        return " ".join(str(text).split()).replace("|", "\\|")

    lines = ["# Metric reference", "",
             f"Generated from `{'/'.join(Path(cat.source).parts[-2:])}` by `snakemake docs`; do not edit by hand. "
             "Each row is one file,",
             "`results/metrics/<scope>/<metric>.json`. The method column is the catalogue's template: a job fills",
             "`{{ field }}` with the values it used, and `{{ phrase }}` is one of the catalogue's phrases.", "",
             "## Measured and computed metrics", "",
             "| scope / metric | rule | unit | timing | tables | method |", "|---|---|---|---|---|---|"]
    for spec in cat.specs.values():
        if spec.scope != "comparison":
            lines.append(f"| `{spec.scope}/{spec.name}` | {spec.rule} | {cell(spec.unit) or '—'} | "
                         f"{cell(spec.timing) if spec.timing else ''} | {tables(spec.scope, spec.name)} | "
                         f"{cell(spec.method)} |")
    lines += ["", "## Comparisons (`comparison/<name>`)", "",
              "| name | formula | a | b | unit | tables | meaning |", "|---|---|---|---|---|---|---|"]
    for c in cat.comparisons:
        lines.append(f"| `{c.name}` | {c.formula} | `{'/'.join(c.a)}` | `{'/'.join(c.b)}` | {c.unit} | "
                     f"{tables('comparison', c.name)} | {cell(c.meaning)} |")
    lines += ["", "## Figure 2 (`comparison/radar_<normalization>_<variant>_<axis>`)", "",
              "| name | s (standard) | q (QLoRA) | formula |", "|---|---|---|---|"]
    for point in cat.radar_points:
        lines.append(f"| `{point.name}` | `{'/'.join(point.s)}` | `{'/'.join(point.q)}` | {cell(point.formula_text)} |")
    return "\n".join(lines) + "\n"
