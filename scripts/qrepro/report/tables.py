"""The paper's Tables 1-12 (13: a GPU reference run), rebuilt from metric files, each reproduced number beside its
published one. What each table holds is data: the `tables` section of paper/metrics.yaml; one builder reads it.

A table is a list of rows; a row maps column names to Cells. Each Cell knows the file its value came
from and the paper value it is compared with, so the CSV written for auditing carries both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from qrepro.report.markup import (PAPER_VALUES, html_link, latex_escape, latex_link, metric_title, paper_title,
                                  ratio_title)
from qrepro.report.numbers import CONTAMINATED_MARK, DASH, PaperValues, Values, fmt
from qrepro.report.render import render_text
from qrepro.catalogue import CellSpec, TableSpec
from qrepro.metrics_io import MetricStore, metric_key

# the sub-columns under each column: the reproduced value, the paper's, a value only the authors' notebook printed
# (paper/paper_values.yaml, table "notebook"), and reproduced / published
SUBCOLUMNS = ("Reproduced", "Paper", "Notebook", "Ratio")


@dataclass
class Cell:
    value: Any
    form: str = "g"
    source: str | None = None      # the file the value is read from
    paper_id: str | None = None    # the paper value it stands beside (measured the same way)
    detail: str = ""               # what a reader sees on hovering: file, value at full precision, unit, method
    interval: tuple[float, float] | None = None  # the file's uncertainty interval (low, high), shown after the value
    seeds: tuple[float, int] | None = None  # (sd, n) over training seeds where they differ: "mean ± sd (n=3)"
    record: dict | None = None     # the metric file's record (None for a hyperparameter)
    withheld: str | None = None    # why a paper value named in the catalogue does not stand beside this one
    contaminated: bool = False     # the file is marked contaminated: the value, and its ratio, carry the mark

    @property
    def mark(self) -> str:
        return CONTAMINATED_MARK if self.contaminated else ""

    def value_text(self) -> str:
        """The value as shown (marked when contaminated), with the spread over training seeds when there are several."""
        shown = fmt(self.value, self.form) + self.mark
        return shown if self.seeds is None else f"{shown} ± {fmt(self.seeds[0], self.form)} (n={self.seeds[1]})"

    def interval_text(self) -> str:
        return f"({fmt(self.interval[0], self.form)} to {fmt(self.interval[1], self.form)})"

    def text(self) -> str:
        """The reproduced value as shown: with its interval, in the same format, when the file has one."""
        return self.value_text() if self.interval is None else f"{self.value_text()} {self.interval_text()}"

    def ratio(self, paper: dict) -> float | None:
        if self.paper_id is None or self.paper_id not in paper:
            return None
        published = paper[self.paper_id]["value"]
        if isinstance(self.value, (int, float)) and not isinstance(self.value, bool) \
                and isinstance(published, (int, float)) and published != 0:
            return self.value / published
        return None


@dataclass
class Table:
    number: int
    caption: str
    columns: list[str]
    rows: list[tuple[str, dict[str, Cell]]]
    ratios: bool = True            # a Ratio column beside each paper column (a wide table may leave them out)

    def display_frame(self, paper: dict, show=None, ratio_below: bool = False) -> pd.DataFrame:
        """The table as the report shows it: per column the reproduced value, the paper's (as the paper printed it)
        and their ratio. show(role, cell, text, published) writes a cell in the report's format (role: reproduced,
        paper, ratio); by default as plain text. ratio_below: the ratio on a second line of the published value's
        cell, not a column of its own (the PDF: a narrower table)."""
        show = show or (lambda role, cell, text, published: text)
        data = {}
        for column in self.columns:
            for sub in SUBCOLUMNS:
                data[(column, sub)] = []
        below_ratio = set()  # the (column, sub) whose cells hold a ratio below the published value
        for _, cells in self.rows:
            for column in self.columns:
                cell = cells.get(column)
                values = dict.fromkeys(SUBCOLUMNS, DASH)
                if cell is not None:
                    published = paper.get(cell.paper_id) if cell.paper_id else None
                    ratio = cell.ratio(paper)
                    values["Reproduced"] = show("reproduced", cell, cell.text(), published)
                    if published:
                        values[published_column(published)] = show("paper", cell, paper_text(published), published)
                    if ratio is not None:
                        values["Ratio"] = show("ratio", cell, f"{ratio:.3g}×{cell.mark}", published)
                    if ratio is not None and ratio_below and self.ratios:
                        column_of = published_column(published)
                        below_ratio.add((column, column_of))
                        below = values.pop("Ratio")
                        values[column_of] = stacked(values[column_of], below) if show is latex_cell else \
                            f"{values[column_of]} ({below})"
                        values["Ratio"] = DASH
                for sub in SUBCOLUMNS:
                    data[(column, sub)].append(values[sub])
        # a column whose cells no paper value stands beside shows the reproduced values alone
        empty = [key for key, values in data.items() if key[1] != "Reproduced" and all(v == DASH for v in values)
                 or key[1] == "Ratio" and not self.ratios]
        shown = {key: values for key, values in data.items() if key not in empty}
        if ratio_below and self.ratios:  # the published column's header names the ratio below its values
            shown = {(column, f"{sub} (ratio)" if (column, sub) in below_ratio else sub): values
                     for (column, sub), values in shown.items()}
        frame = pd.DataFrame(shown, index=[label for label, _ in self.rows])
        frame.columns = pd.MultiIndex.from_tuples(frame.columns)
        frame.index.name = None
        return frame

    def audit_frame(self, paper: dict) -> pd.DataFrame:
        """Long form for auditing: one line per reproduced number, with its source file and paper value."""
        lines = []
        for label, cells in self.rows:
            for column, cell in cells.items():
                published = paper.get(cell.paper_id) if cell.paper_id else None
                low, high = cell.interval or (None, None)
                sd, n = cell.seeds or (None, None)
                lines.append({"table": self.number, "row": label, "column": column, "reproduced": cell.value,
                              "interval_low": low, "interval_high": high, "seeds_sd": sd, "seeds_n": n,
                              "paper": published["value"] if published else None, "ratio": cell.ratio(paper),
                              "paper_id": cell.paper_id,
                              "published_by": published_column(published).lower() if published else None,
                              "paper_withheld": cell.withheld, "source": cell.source,
                              "contaminated": cell.contaminated})
        return pd.DataFrame(lines)


@dataclass
class Sources:
    """What a table's cells read: metric files, and the hyperparameters each variant ran with."""
    metrics: MetricStore
    hyperparameters: dict[str, dict] = field(default_factory=dict)
    hyperparameter_files: dict[str, str] = field(default_factory=dict)


def published_column(entry: dict) -> str:
    """Where a published value stands: under Paper, or under Notebook for one only the authors' notebook printed."""
    return "Notebook" if entry["table"] == "notebook" else "Paper"


def withheld_because(entry: dict, metrics: MetricStore, paper: dict) -> str | None:
    """Why this run's number may not stand beside a paper value (its entry's beside_only_when), or None."""
    condition = entry.get("beside_only_when")
    if not condition:
        return None
    scope, metric = metric_key(condition["file"])
    wanted = paper[condition["equals"]]["value"] * condition["scale"]
    found = metrics.record(scope, metric).get("details", {}).get(condition["details"]) \
        if metrics.has(scope, metric) else None
    if found is not None and abs(found - wanted) <= 1e-9 * abs(wanted):
        return None
    return (f"{condition['file']}: details.{condition['details']} = {found!r}, not {condition['equals']} x "
            f"{condition['scale']:g} = {wanted!r}")


def cell(spec: CellSpec, sources: Sources, paper: dict | None = None) -> Cell:
    """A Cell from its catalogue spec (qrepro.catalogue.CellSpec). A paper value whose condition (beside_only_when)
    this run does not meet is withheld: no paper value, no ratio."""
    pid = spec.paper_id
    withheld = withheld_because(paper[pid], sources.metrics, paper) if pid and paper and pid in paper else None
    if withheld:
        pid = None
    if spec.variant:
        value = sources.hyperparameters[spec.variant].get(spec.key)
        if spec.aggregate == "count":
            value = len(value)
        elif spec.aggregate == "join":
            value = ", ".join(value)
        path = sources.hyperparameter_files[spec.variant]
        return Cell(value, spec.form, path, pid, f"{path}: {spec.key} = {value}")
    key = spec.metric_key
    record = sources.metrics.record(*key)
    value = record["value"]
    scale = spec.scale or 1.0
    if spec.scale and isinstance(value, (int, float)):
        value = value * scale
    path = sources.metrics.paths[key]
    shown = f" Shown × {spec.scale:g}." if spec.scale else ""
    detail = metric_title(path, record) + shown
    interval = None
    if "interval" in record:
        bounds = record["interval"]
        interval = (bounds["low"] * scale, bounds["high"] * scale)
        detail += (f" {bounds['level']:.0%} interval {bounds['low']!r} to {bounds['high']!r}: {bounds['method']}.")
    seeds = None
    if record.get("seeds", {}).get("sd"):  # several training seeds whose values differ
        spread = record["seeds"]
        seeds = (spread["sd"] * scale, spread["n"])
        detail += f" Training seeds {spread['seeds']}: values {spread['values']}, sd {spread['sd']!r}."
    elif "seeds" in record:
        detail += f" The same in all {record['seeds']['n']} training seeds."
    contaminated = bool(record.get("contaminated"))
    if contaminated:
        detail += (" Contaminated: every attempt observed outside load"
                   + (f" (from {', '.join(record['details']['contaminated_inputs'])})"
                      if "contaminated_inputs" in record.get("details", {}) else "") + ".")
    if withheld:
        detail += f" No paper value beside it: {withheld}."
    return Cell(value, spec.form, path, pid, detail, interval, seeds, record, withheld, contaminated)


def build_table(spec: TableSpec, sources: Sources, paper: dict, reference: str | None = None) -> Table:
    """One table from its catalogue entry: rows whose `when` file is absent are left out; the caption and row labels
    are texts in the prose language (qrepro.report.render.render_text), their numbers read from the files. Its notes
    are prose (templates/prose.j2, notes_t<number>)."""
    m = sources.metrics
    names = {"v": Values(m), "pv": PaperValues(paper), **({"reference": reference} if reference else {})}
    rows = [(render_text(row.label, **names), {column: cell(c, sources, paper) for column, c in row.cells.items()})
            for row in spec.rows if row.when is None or m.has(*row.when)]
    return Table(spec.number, render_text(spec.caption, **names), spec.columns, rows, spec.ratios)


def build_tables(specs: list[TableSpec], sources: Sources, paper: dict, reference: Sources | None = None,
                 reference_label: str | None = None) -> list[Table]:
    """Every table of the catalogue; those marked `reference` only when a reference run is given."""
    tables = []
    for spec in specs:
        if not spec.reference:
            tables.append(build_table(spec, sources, paper))
        elif reference is not None:
            tables.append(build_table(spec, reference, paper, reference_label))
    return tables


def paper_text(entry: dict) -> str:
    """A paper value as the paper printed it: its `printed` form, else the number with thousands separators and
    the decimals written in paper/paper_values.yaml (2.88, not 2.880; -212.0 as printed)."""
    if "printed" in entry:
        return entry["printed"]
    value = entry["value"]
    return f"{value:,}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def stacked(published: str, ratio: str) -> str:
    """A published value (LaTeX) with its ratio on a smaller second line."""
    return rf"\begin{{tabular}}[t]{{@{{}}r@{{}}}}{published}\\{{\scriptsize {ratio}}}\end{{tabular}}"


# a text cell longer than this many characters wraps in the PDF (an optimizer as it ran), so the table stays narrow
WRAP_TEXT = 24


def latex_cell(role: str, cell: Cell, text: str, published: dict | None) -> str:
    """A cell in LaTeX: a reproduced value and a ratio link to the file (relative to report/, where the PDF is built);
    a long text wraps."""
    if role == "reproduced" and cell.source:
        value = latex_link(latex_escape(fmt(cell.value, cell.form) + cell.mark), cell.source)
        # the seeds' spread and the interval on smaller lines below the value: the column stays narrow
        lines = [value]
        if cell.seeds is not None:
            lines.append(rf"{{\scriptsize {latex_escape(f'± {fmt(cell.seeds[0], cell.form)} (n={cell.seeds[1]})')}}}")
        if cell.interval is not None:  # a spaced en dash: narrower than "to", and apart from a minus sign
            low, high = (latex_escape(fmt(bound, cell.form)) for bound in cell.interval)
            lines.append(rf"{{\scriptsize ({low}\,--\,{high})}}")
        if len(lines) > 1:
            stacked = r"\\".join(lines)
            return rf"\begin{{tabular}}[t]{{@{{}}r@{{}}}}{stacked}\end{{tabular}}"
        if isinstance(cell.value, str) and len(text) > WRAP_TEXT:
            return latex_link(rf"\parbox[t]{{9em}}{{\raggedleft {latex_escape(text)}}}", cell.source)
        return latex_link(latex_escape(text), cell.source)
    if role == "ratio" and cell.source:
        return latex_link(latex_escape(text), cell.source)
    return latex_escape(text)


def html_cell(role: str, cell: Cell, text: str, published: dict | None) -> str:
    """A cell in HTML, through the one link helper (qrepro.report.markup): a reproduced value links to its file, titled
    with its method and inputs; a paper value to paper/paper_values.yaml, titled with its entry; a ratio to the file
    it divides, titled with the formula and the paper value's entry."""
    if role == "reproduced":
        return html_link(text, cell.source, cell.detail)
    if role == "paper":
        return html_link(text, PAPER_VALUES, paper_title(published), "num paper")
    ratio = cell.ratio({published["id"]: published})
    if cell.record is None:  # a hyperparameter: its file has no method
        title = f"ratio = reproduced / published = {cell.value!r} / {published['value']!r} = {ratio!r}. " \
                f"Reproduced: {cell.detail}. Published: {paper_title(published)}"
    else:
        title = ratio_title(cell.source, cell.record, cell.value, published, ratio)
    return html_link(text, cell.source, title)


# row labels longer than this wrap, in a column as wide as the page leaves beside the value columns (estimated at
# \footnotesize: POINTS_PER_CHARACTER, with 3 pt gaps), within LABEL_WIDTHS of the text width (TEXT_WIDTH_PT, A4 with
# 2 cm margins); the LaTeX template measures the result and turns the page only when it still does not fit
LONG_LABEL, LABEL_WIDTHS, TEXT_WIDTH_PT, POINTS_PER_CHARACTER = 24, (0.14, 0.5), 482.0, 4.4


def _text_width(text: str) -> float:
    """Characters a cell's text takes: a value with its interval below it (smaller) is as wide as its wider line."""
    if len(str(text)) > WRAP_TEXT and not any(ch.isdigit() for ch in str(text)[:1]):
        return 20  # a long text wraps at 9em (latex_cell)
    value, _, below = str(text).partition(" (")
    return max(len(value), 0.8 * (len(below) + 2) if below else 0)


def label_column(table: Table, paper: dict) -> str:
    """The LaTeX column of the row labels: as wide as the longest one, or a wrapping column for long ones."""
    longest = max((len(label) for label, _ in table.rows), default=0)
    if longest <= LONG_LABEL:
        return "l"
    plain = table.display_frame(paper, ratio_below=True)
    spans = pd.Series(plain.columns.get_level_values(0)).value_counts()
    characters = sum(max([len(sub), len(column) / spans[column]] + [_text_width(t) for t in plain[(column, sub)]])
                     for column, sub in plain.columns)
    free = 1 - (characters * POINTS_PER_CHARACTER + 6 * len(plain.columns) + 6) / TEXT_WIDTH_PT
    width = min(max(free, LABEL_WIDTHS[0]), LABEL_WIDTHS[1])
    return rf">{{\raggedright\arraybackslash}}p{{{width:.2f}\linewidth}}"


def write_table(table: Table, paper: dict, csv_path: str, tex_path: str, html_path: str) -> int:
    """The table as CSV (audit: every value with its source and paper value), LaTeX and HTML; returns the number of
    value columns shown (the LaTeX template puts a wide table on a landscape page)."""
    table.audit_frame(paper).to_csv(csv_path, index=False)
    latex = table.display_frame(paper, latex_cell, ratio_below=True)
    styler = latex.style.format(escape=None).format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    tex = styler.to_latex(hrules=True, multicol_align="c", column_format=label_column(table, paper) + "r" * latex.shape[1])
    with open(tex_path, "w") as handle:
        handle.write(tex)
    html_frame = table.display_frame(paper, html_cell)
    html_styler = html_frame.style.format(escape=None).format_index(escape="html", axis=0).format_index(
        escape="html", axis=1)
    html_styler = html_styler.set_table_attributes('class="paper-table"').set_uuid(f"table{table.number}")
    with open(html_path, "w") as handle:
        handle.write(html_styler.to_html())
    return latex.shape[1]
