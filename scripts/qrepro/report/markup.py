"""The report's markup, in one place: escaping for LaTeX and HTML, the one link helper (every number the HTML report
shows links to the file it comes from, titled with that file's method and inputs; the PDF keeps its table links,
relative to report/, where both are built), the prose's elements per format, and LaTeX math written as HTML.

    metric_title(path, record)          a metric file's title: path, value and unit, method, inputs
    paper_title(entry)                  a paper value's title: its paper/paper_values.yaml entry and where it stands
    ratio_title(cell_path, record, ...)  a Ratio cell's: the formula, the file it divides and the paper value's entry
    html_link(text, href, title)        <a class="num"> with that title (text and title escaped)
    latex_link(text, href)              \\href{../href}{text} (text already LaTeX)
"""
from __future__ import annotations

import html
import re
from html import escape

import jinja2
from markupsafe import Markup
from markupsafe import escape as markup_escape

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


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", "×": r"$\times$", "²": r"\textsuperscript{2}",
    "—": "---", "–": "--", "→": r"$\rightarrow$", "≤": r"$\leq$", "≥": r"$\geq$", "α": r"$\alpha$",
    # superscripts, as a paper value is printed (2×10⁻⁵): set raised, never as a literal caret
    "⁻": r"\textsuperscript{\textminus}", **{chr(c): rf"\textsuperscript{{{d}}}" for d, c in
                                             zip("0123456789", (0x2070, 0xB9, 0xB2, 0xB3, *range(0x2074, 0x207A)))},
}


_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIALS))


class RawLatex(str):
    """LaTeX that was produced safely elsewhere (pandas Styler with escape='latex'); not escaped again."""


def latex_escape(value) -> str:
    if isinstance(value, RawLatex):
        return value
    return _LATEX_RE.sub(lambda match: _LATEX_SPECIALS[match.group()], str(value))


_BREAK_AFTER = re.compile(r"([./_,(=:;-])|([0-9a-fA-F]{16})(?=[0-9a-fA-F])")


def latex_breakable(value) -> RawLatex:
    """Escaped like any text, but a long path, hash or call may break across lines: after . / _ , ( = : ; - and
    every 16 hexadecimal digits (so nothing runs off the page)."""
    parts = []
    for piece in re.split(r"(\s+)", str(value)):
        marked = _BREAK_AFTER.sub(lambda m: (m.group(0)) + "\x00", piece)
        parts.append("\\allowbreak{}".join(latex_escape(chunk) for chunk in marked.split("\x00")))
    return RawLatex("".join(parts))


def _elements(escape_value, as_safe, **tags) -> dict:
    """Markup elements that wrap a value (escaped here) or a {% call %} body (already in the format)."""
    def element(before: str, after: str):
        def write(value=None, caller=None):
            body = caller() if caller is not None else escape_value(value)
            return as_safe(as_safe(before) + body.strip() + as_safe(after))  # Markup + str would escape the tags
        return write
    return {name: element(*tag) for name, tag in tags.items()}


def latex_markup() -> dict:
    return {**_elements(latex_escape, RawLatex, strong=(r"\textbf{", "}"),
                        item=(r"\item ", "\n"), itemize=("\\begin{itemize}\n", "\n\\end{itemize}"),
                        note=("\n\n{\\footnotesize ", "}")),
            **_elements(latex_breakable, RawLatex, code=(r"\texttt{", "}")),
            "math": lambda source: RawLatex(f"${source}$"),
            "section_ref": lambda target: RawLatex(rf"Section~\ref{{sec:{target}}}"),
            "linked": lambda text, path, title: RawLatex(latex_link(latex_escape(text), path)),
            "table_ref": lambda number: RawLatex(f"Table~{int(number)}"),
            "linebreak": lambda: RawLatex("\\\\")}


def html_markup() -> dict:
    @jinja2.pass_context
    def section_ref(context, target: str) -> Markup:
        """A link labelled with the section's number, as the outline numbers it (LaTeX numbers it the same way)."""
        return Markup('<a href="#{}">Section {}</a>').format(target, context["outline"]["numbers"][target])

    return {**_elements(markup_escape, Markup, strong=("<strong>", "</strong>"), code=("<code>", "</code>"),
                        item=("<li>", "</li>\n"), itemize=("<ul>\n", "\n</ul>"),
                        note=('<p class="note">', "</p>\n")),
            "math": math_html,
            "section_ref": section_ref,
            "linked": lambda text, path, title: Markup(html_link(text, path, title)),
            "table_ref": lambda number: Markup('<a href="#t{0}">Table {0}</a>').format(int(number)),
            "linebreak": lambda: Markup("<br>")}


# Spaced as TeX spaces them: around relations and binary operators only.
_MATH_SYMBOLS = {r"\alpha": "α", r"\cdot": "·", " ": "", r"\in": " ∈ ", r"\times": " × ", r"\leq": " ≤ ",
                 r"\geq": " ≥ ", "=": " = ", "+": " + ", "-": " − "}


_MATH_BLACKBOARD = {"R": "ℝ", "N": "ℕ", "Z": "ℤ"}


def math_html(source: str) -> Markup:
    """The LaTeX math the prose writes, as HTML: sub- and superscripts, \\frac, \\mathbb and a few symbols, spaced
    as TeX spaces them. Anything else is refused, so a new formula cannot come out garbled."""
    tokens, position = re.findall(r"\\[A-Za-z]+|.", source, re.S), 0

    def atom() -> str:
        nonlocal position
        if position == len(tokens):
            raise ValueError(f"incomplete LaTeX math: {source!r}")
        token, position = tokens[position], position + 1
        if token == "{":
            return group("}")
        if token in ("_", "^"):
            tag = "sub" if token == "_" else "sup"
            return f"<{tag}>{atom()}</{tag}>"
        if token == r"\frac":
            return f"({atom()}/{atom()})"
        if token == r"\mathbb" and (letter := atom()) in _MATH_BLACKBOARD:
            return _MATH_BLACKBOARD[letter]
        if token in _MATH_SYMBOLS:
            return _MATH_SYMBOLS[token]
        if token.startswith("\\") or token == "}":
            raise ValueError(f"LaTeX math the HTML report cannot write: {token!r} in {source!r}")
        return html.escape(token)

    def group(end: str | None) -> str:
        nonlocal position
        parts = []
        while (tokens[position] if position < len(tokens) else None) != end:
            parts.append(atom())
        position += 1
        return "".join(parts)

    return Markup(group(None))
