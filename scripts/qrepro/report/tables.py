"""The paper's Tables 1-12 (13: a GPU reference run), rebuilt from metric files, each reproduced number beside its
published one. What each table holds is data: the `tables` section of paper/metrics.yaml; one builder reads it.

A table is a list of rows; a row maps column names to Cells. Each Cell knows the file its value came
from and the paper value it is compared with, so the CSV written for auditing carries both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from qrepro.report.placeholders import DASH, fill, fmt
from qrepro.metrics_io import MetricStore


@dataclass
class Cell:
    value: Any
    kind: str = "g"
    source: str | None = None      # the file the value is read from
    paper_id: str | None = None    # the paper value it stands beside (measured the same way)
    detail: str = ""               # what a reader sees on hovering: file, value at full precision, unit, method
    interval: tuple[float, float] | None = None  # the file's uncertainty interval (low, high), shown after the value
    seeds: tuple[float, int] | None = None  # (sd, n) over training seeds where they differ: "mean ± sd (n=3)"

    def value_text(self) -> str:
        """The value as shown, with the spread over training seeds when there are several."""
        shown = fmt(self.value, self.kind)
        return shown if self.seeds is None else f"{shown} ± {fmt(self.seeds[0], self.kind)} (n={self.seeds[1]})"

    def interval_text(self) -> str:
        return f"({fmt(self.interval[0], self.kind)} to {fmt(self.interval[1], self.kind)})"

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

    def display_frame(self, paper: dict, show=None) -> pd.DataFrame:
        """The table as the report shows it: per column the reproduced value, the paper's (as the paper printed it)
        and their ratio. show(role, cell, text, published) writes a cell in the report's format (role: reproduced,
        paper, ratio); by default as plain text."""
        show = show or (lambda role, cell, text, published: text)
        data = {}
        for column in self.columns:
            for sub in ("Reproduced", "Paper", "Ratio"):
                data[(column, sub)] = []
        for _, cells in self.rows:
            for column in self.columns:
                cell = cells.get(column)
                if cell is None:
                    values = [DASH, DASH, DASH]
                else:
                    published = paper.get(cell.paper_id) if cell.paper_id else None
                    ratio = cell.ratio(paper)
                    values = [show("reproduced", cell, cell.text(), published),
                              show("paper", cell, paper_text(published), published) if published else DASH,
                              show("ratio", cell, f"{ratio:.3g}×", published) if ratio is not None else DASH]
                for sub, text in zip(("Reproduced", "Paper", "Ratio"), values):
                    data[(column, sub)].append(text)
        # a column whose cells no paper value stands beside shows the reproduced values alone
        empty = [key for key, values in data.items() if key[1] != "Reproduced" and all(v == DASH for v in values)
                 or key[1] == "Ratio" and not self.ratios]
        frame = pd.DataFrame({key: values for key, values in data.items() if key not in empty},
                             index=[label for label, _ in self.rows])
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
                              "paper_id": cell.paper_id, "source": cell.source})
        return pd.DataFrame(lines)


@dataclass
class Sources:
    """What a table's cells read: metric files, and the hyperparameters each variant ran with."""
    metrics: MetricStore
    hyperparameters: dict[str, dict] = field(default_factory=dict)
    hyperparameter_files: dict[str, str] = field(default_factory=dict)


CELL_SOURCE = re.compile(r"^(?:hp:(?P<variant>[a-z_]+)/(?P<key>\w+)(?:#(?P<aggregate>count|join))?"
                         r"|(?P<scope>\w+)/(?P<metric>\w+)(?:\*(?P<scale>[0-9.e+-]+))?)$")


def cell(spec: str, sources: Sources) -> Cell:
    """A Cell from its catalogue spec, "SOURCE|FORMAT[|PAPER_ID]" (see the header of the tables section)."""
    source, kind, *paper_id = spec.split("|")
    match = CELL_SOURCE.match(source)
    if match is None or len(paper_id) > 1:
        raise ValueError(f"table cell {spec!r}: not SOURCE|FORMAT[|PAPER_ID]")
    pid = paper_id[0] if paper_id else None
    if match["variant"]:
        value = sources.hyperparameters[match["variant"]].get(match["key"])
        if match["aggregate"] == "count":
            value = len(value)
        elif match["aggregate"] == "join":
            value = ", ".join(value)
        path = sources.hyperparameter_files[match["variant"]]
        return Cell(value, kind, path, pid, f"{path}: {match['key']} = {value}")
    key = (match["scope"], match["metric"])
    record = sources.metrics.record(*key)
    value = record["value"]
    if match["scale"] and isinstance(value, (int, float)):
        value = value * float(match["scale"])
    path = sources.metrics.paths[key]
    shown = f" (shown × {match['scale']})" if match["scale"] else ""
    detail = f"{path}: {record['value']!r} {record['unit']}{shown}. {record['method']}"
    interval = None
    if "interval" in record:
        bounds = record["interval"]
        scale = float(match["scale"]) if match["scale"] else 1.0
        interval = (bounds["low"] * scale, bounds["high"] * scale)
        detail += (f" {bounds['level']:.0%} interval {bounds['low']!r} to {bounds['high']!r}: {bounds['method']}.")
    seeds = None
    if record.get("seeds", {}).get("sd"):  # several training seeds whose values differ
        spread = record["seeds"]
        seeds = (spread["sd"] * (float(match["scale"]) if match["scale"] else 1.0), spread["n"])
        detail += f" Training seeds {spread['seeds']}: values {spread['values']}, sd {spread['sd']!r}."
    elif "seeds" in record:
        detail += f" The same in all {record['seeds']['n']} training seeds."
    return Cell(value, kind, path, pid, detail, interval, seeds)


def build_table(spec: dict, sources: Sources, paper: dict, reference: str | None = None) -> Table:
    """One table from its catalogue entry: rows whose `when` file is absent are left out; placeholders in the caption
    and row labels are filled from the files. Its notes are prose (templates/prose.j2, notes_t<number>)."""
    m = sources.metrics
    rows = []
    for row in spec["rows"]:
        label, cells, when = (row[0], row[1], None) if isinstance(row, list) else (row["label"], row["cells"],
                                                                                   row.get("when"))
        if when is None or m.has(*when.split("/")):
            rows.append((fill(label, m, paper, reference), {column: cell(text, sources) for column, text in cells.items()}))
    return Table(spec["number"], fill(spec["caption"], m, paper, reference), spec["columns"], rows,
                 spec.get("ratios", True))


def build_tables(specs: list[dict], sources: Sources, paper: dict, reference: Sources | None = None,
                 reference_label: str | None = None) -> list[Table]:
    """Every table of the catalogue; those marked `reference` only when a reference run is given."""
    tables = []
    for spec in specs:
        if not spec.get("reference"):
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


def paper_detail(entry: dict) -> str:
    return (f"paper/paper_values.yaml: {entry['id']} = {entry['value']} {entry['unit']} (paper's Table {entry['table']}, "
            f"{entry['row']}, {entry['column']})")


def latex_cell(role: str, cell: Cell, text: str, published: dict | None) -> str:
    """A cell in LaTeX: a reproduced value links to its file (relative to report/, where the PDF is built)."""
    from qrepro.report.render import latex_escape
    if role == "reproduced" and cell.source:
        value = rf"\href{{../{cell.source}}}{{{latex_escape(fmt(cell.value, cell.kind))}}}"
        # the seeds' spread and the interval on smaller lines below the value: the column stays narrow
        lines = [value]
        if cell.seeds is not None:
            lines.append(rf"{{\scriptsize {latex_escape(f'± {fmt(cell.seeds[0], cell.kind)} (n={cell.seeds[1]})')}}}")
        if cell.interval is not None:  # a spaced en dash: narrower than "to", and apart from a minus sign
            low, high = (latex_escape(fmt(bound, cell.kind)) for bound in cell.interval)
            lines.append(rf"{{\scriptsize ({low}\,--\,{high})}}")
        if len(lines) > 1:
            stacked = r"\\".join(lines)
            return rf"\begin{{tabular}}[t]{{@{{}}r@{{}}}}{stacked}\end{{tabular}}"
        return rf"\href{{../{cell.source}}}{{{latex_escape(text)}}}"
    return latex_escape(text)


def html_cell(role: str, cell: Cell, text: str, published: dict | None) -> str:
    """A cell in HTML: every number names its source on hover; a reproduced value links to its file, a paper value to
    paper/paper_values.yaml, a ratio names both."""
    from html import escape
    if role == "reproduced":
        return f'<a class="num" href="../{escape(cell.source)}" title="{escape(cell.detail)}">{escape(text)}</a>'
    if role == "paper":
        return (f'<a class="num paper" href="../paper/paper_values.yaml" title="{escape(paper_detail(published))}">'
                f"{escape(text)}</a>")
    title = f"{cell.source} / paper value {published['id']} (paper/paper_values.yaml)"
    return f'<span class="num" title="{escape(title)}">{escape(text)}</span>'


def write_table(table: Table, paper: dict, csv_path: str, tex_path: str, html_path: str) -> int:
    """The table as CSV (audit: every value with its source and paper value), LaTeX and HTML; returns the number of
    value columns shown (the LaTeX template puts a wide table on a landscape page)."""
    table.audit_frame(paper).to_csv(csv_path, index=False)
    latex = table.display_frame(paper, latex_cell)
    styler = latex.style.format(escape=None).format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    tex = styler.to_latex(hrules=True, multicol_align="c", column_format="l" + "r" * latex.shape[1])
    with open(tex_path, "w") as handle:
        handle.write(tex)
    html_frame = table.display_frame(paper, html_cell)
    html_styler = html_frame.style.format(escape=None).format_index(escape="html", axis=0).format_index(
        escape="html", axis=1)
    html_styler = html_styler.set_table_attributes('class="paper-table"').set_uuid(f"table{table.number}")
    with open(html_path, "w") as handle:
        handle.write(html_styler.to_html())
    return latex.shape[1]
