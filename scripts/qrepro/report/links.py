"""The one link helper of the report: every number the HTML report shows links to the file it comes from, titled
with that file's method and inputs; the PDF keeps its table links (relative to report/, where both are built).

    metric_title(path, record)          a metric file's title: path, value and unit, method, inputs
    paper_title(entry)                  a paper value's title: its paper/paper_values.yaml entry and where it stands
    ratio_title(cell_path, record, ...)  a Ratio cell's: the formula, the file it divides and the paper value's entry
    html_link(text, href, title)        <a class="num"> with that title (text and title escaped)
    latex_link(text, href)              \\href{../href}{text} (text already LaTeX)
"""
from __future__ import annotations

from html import escape

PAPER_VALUES = "paper/paper_values.yaml"


def metric_title(path: str, record: dict, field: str | None = None, shown=None) -> str:
    """What a reader sees on hovering a number read from a metric file. field: a part of the file other than its
    value (details.x, interval.low), with the value shown."""
    what = f"{field} = {shown!r}" if field else f"{record['value']!r} {record.get('unit', '')}".rstrip()
    inputs = record.get("inputs") or []
    read = f" Inputs: {', '.join(map(str, inputs))}." if inputs else ""
    return f"{path}: {what}. Method: {record.get('method', '(none recorded)')}{read}"


def paper_title(entry: dict) -> str:
    where = f"paper's Table {entry['table']}" if entry["table"] != "notebook" else "the authors' notebook, not the paper"
    return (f"{PAPER_VALUES}: {entry['id']} = {entry['value']} {entry['unit']} ({where}, {entry['row']}, "
            f"{entry['column']})").replace("  ", " ")


def ratio_title(path: str, record: dict, value: float, entry: dict, ratio: float) -> str:
    """A Ratio cell: reproduced / published, each named, and the reproduced file's method and inputs."""
    return (f"ratio = reproduced / published = {value!r} / {entry['value']!r} = {ratio!r}. Reproduced: "
            f"{metric_title(path, record)} Published: {paper_title(entry)}")


def html_link(text: str, href: str, title: str, css: str = "num") -> str:
    """An HTML link from report/ to a file of the repository, the number as its text."""
    return f'<a class="{css}" href="../{escape(href)}" title="{escape(title)}">{escape(str(text))}</a>'


def latex_link(latex_text: str, href: str) -> str:
    """A LaTeX link from report/ to a file of the repository; latex_text is already escaped."""
    return rf"\href{{../{href}}}{{{latex_text}}}"
