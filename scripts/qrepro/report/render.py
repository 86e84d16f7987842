"""Jinja2 rendering of the report: one context, a LaTeX template and an HTML template, and the prose both show,
written once (templates/prose.j2) and rendered per format with that format's escaping and markup."""
from __future__ import annotations

import html
import re
from functools import partial
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2.lexer import Token
from markupsafe import Markup, escape

from qrepro.report.links import PAPER_VALUES, html_link, latex_link, metric_title, paper_title
from qrepro.report.placeholders import Values

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


def latex_environment(template_dir: str) -> jinja2.Environment:
    """LaTeX-safe delimiters (\\VAR{...}, \\BLOCK{...}); every value is escaped unless it is RawLatex."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir), undefined=jinja2.StrictUndefined, autoescape=False,
        block_start_string=r"\BLOCK{", block_end_string="}", variable_start_string=r"\VAR{", variable_end_string="}",
        comment_start_string=r"\#{", comment_end_string="}", line_statement_prefix="%%", line_comment_prefix="%#",
        trim_blocks=True, lstrip_blocks=True, finalize=latex_escape, keep_trailing_newline=True)
    env.extend(prose_environment=_prose_environment(template_dir, escape_text=latex_escape, as_safe=RawLatex,
                                                    markup=_latex_markup(), autoescape=False, finalize=latex_escape))
    env.filters["raw"] = RawLatex  # the output of the template's own macros, already LaTeX
    env.filters["breakable"] = latex_breakable  # paths and hashes
    env.filters["latex_command"] = lambda name: RawLatex("\\" + name)
    return env


def html_environment(template_dir: str) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(template_dir), undefined=jinja2.StrictUndefined,
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.extend(prose_environment=_prose_environment(template_dir, escape_text=partial(html.escape, quote=False),
                                                    as_safe=Markup, markup=_html_markup(), autoescape=True))
    return env


def render(env: jinja2.Environment, template: str, context: dict, out_path: str) -> None:
    """The template, with the shared prose (`prose.<paragraph>`) rendered by the same format's prose environment."""
    text = env.get_template(template).render(**context, prose=prose(env.prose_environment, context))
    tmp = Path(out_path).with_suffix(Path(out_path).suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(out_path)


# The prose both templates show (templates/prose.j2): one macro per paragraph, rendered once per format. Its literal
# text is plain text that the format escapes; its markup is the format's few elements below.
PROSE = "prose.j2"


class LinkedValues:
    """The prose's numbers as the HTML report shows them: each one a link to its metric file (relative to report/),
    whose title gives the file, the value at full precision with its unit, and the method. Everything else is the
    plain Values'."""

    def __init__(self, values):
        self.values = values

    def __getattr__(self, name):
        return getattr(self.values, name)

    def _link(self, key: str, text: str, field: str | None = None, shown=None, extra: str = "") -> Markup:
        """The one link helper's link (qrepro.report.links): to the file, titled with its method and inputs."""
        scope, metric = key.split("/")
        record, path = self.values.m.record(scope, metric), self.values.m.paths[(scope, metric)]
        return Markup(html_link(text, path, metric_title(path, record, field, shown) + extra))

    def f(self, key: str, kind: str, scale: float = 1) -> Markup:
        return self._link(key, self.values.f(key, kind, scale))

    def size(self, key: str, kind: str) -> Markup:
        return self._link(key, self.values.size(key, kind))

    def bound(self, key: str, side: str, kind: str, entry: str | None = None) -> Markup:
        interval = self.values.interval_of(key, entry)
        field = f"details.{entry}" if entry else "interval"
        return self._link(key, self.values.bound(key, side, kind, entry), f"{field}.{side}", interval[side],
                          f" Interval ({interval['level']:.0%}): {interval['method']}")

    def detail(self, key: str, entry: str, kind: str = "text", scale: float = 1):
        text = self.values.detail(key, entry, kind, scale)
        if kind == "text":
            return text
        scope, metric = key.split("/")
        return self._link(key, text, f"details.{entry}", self.values.m.record(scope, metric)["details"][entry])

    def level(self, key: str) -> Markup:
        scope, metric = key.split("/")
        return self._link(key, self.values.level(key), "interval.level",
                          self.values.m.record(scope, metric)["interval"]["level"])

    def count(self, key: str, entry: str) -> Markup:
        scope, metric = key.split("/")
        return self._link(key, self.values.count(key, entry), f"details.{entry}",
                          self.values.m.record(scope, metric)["details"][entry])

    def listed(self, key: str, entry: str) -> Markup:
        scope, metric = key.split("/")
        return self._link(key, self.values.listed(key, entry), f"details.{entry}",
                          self.values.m.record(scope, metric)["details"][entry])

    def nested(self, key: str, entry: str, kind: str, scale: float = 1) -> Markup:
        return self._link(key, self.values.nested(key, entry, kind, scale), f"details.{entry}",
                          self.values.nested_value(key, entry))


class LinkedPaperValues:
    """The paper's numbers in the HTML report: each names its paper/paper_values.yaml entry."""

    def __init__(self, paper_values):
        self.paper_values = paper_values

    def __getattr__(self, name):
        return getattr(self.paper_values, name)

    def f(self, key: str, kind: str) -> Markup:
        return Markup(html_link(self.paper_values.f(key, kind), PAPER_VALUES, paper_title(self.paper_values.paper[key]),
                                "num paper"))


def prose(env: jinja2.Environment, context: dict) -> dict:
    """Every paragraph of templates/prose.j2, rendered in env's format and marked safe for the report template; a
    macro with arguments (a phrase, e.g. claim_basis) as a function the report template calls. In HTML every number
    read from a file links to it (LinkedValues)."""
    if env.autoescape and isinstance(context.get("v"), Values):
        context = {**context, "v": LinkedValues(context["v"]), "pv": LinkedPaperValues(context["pv"])}
        if context.get("reference"):
            context["reference"] = {**context["reference"], "v": LinkedValues(context["reference"]["v"])}
        if context.get("sweeps"):  # each finished sweep's numbers (qrepro.report.sweeps)
            context["sweeps"] = [{**s, "v": LinkedValues(s["v"])} for s in context["sweeps"]]
    module = env.get_template(PROSE).make_module(context)
    paragraphs = {}
    for name, macro in vars(module).items():
        if not isinstance(macro, jinja2.runtime.Macro):
            continue
        if macro.arguments:
            paragraphs[name] = partial(_phrase, env, macro)
        else:
            paragraphs[name] = env.as_safe(macro().strip())
    return paragraphs


def _phrase(env: jinja2.Environment, macro, *args):
    return env.as_safe(" ".join(macro(*args).split()))



class _PlainText(jinja2.ext.Extension):
    """The prose template's literal text is plain text: the environment's escape_text writes it in its format."""

    def filter_stream(self, stream):
        for token in stream:
            if token.type == "data":
                token = Token(token.lineno, "data", self.environment.escape_text(token.value))
            yield token


def _prose_environment(template_dir: str, *, escape_text, as_safe, markup: dict, **options) -> jinja2.Environment:
    from qrepro.report.placeholders import fmt

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(template_dir), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, extensions=[_PlainText], **options)
    env.extend(escape_text=escape_text, as_safe=as_safe)
    env.globals.update(markup, fmt=fmt)
    env.filters["formatted"] = as_safe  # a phrase another macro wrote is already in the format: not escaped again
    return env


def _elements(escape_value, as_safe, **tags) -> dict:
    """Markup elements that wrap a value (escaped here) or a {% call %} body (already in the format)."""
    def element(before: str, after: str):
        def write(value=None, caller=None):
            body = caller() if caller is not None else escape_value(value)
            return as_safe(as_safe(before) + body.strip() + as_safe(after))  # Markup + str would escape the tags
        return write
    return {name: element(*tag) for name, tag in tags.items()}


def _latex_markup() -> dict:
    return {**_elements(latex_escape, RawLatex, strong=(r"\textbf{", "}"),
                        item=(r"\item ", "\n"), itemize=("\\begin{itemize}\n", "\n\\end{itemize}"),
                        note=("\n\n{\\footnotesize ", "}")),
            **_elements(latex_breakable, RawLatex, code=(r"\texttt{", "}")),
            "math": lambda source: RawLatex(f"${source}$"),
            "section_ref": lambda target: RawLatex(rf"Section~\ref{{sec:{target}}}"),
            "linked": lambda text, path, title: RawLatex(latex_link(latex_escape(text), path)),
            "table_ref": lambda number: RawLatex(f"Table~{int(number)}"),
            "linebreak": lambda: RawLatex("\\\\")}


def _html_markup() -> dict:
    @jinja2.pass_context
    def section_ref(context, target: str) -> Markup:
        """A link labelled with the section's number, as the outline numbers it (LaTeX numbers it the same way)."""
        return Markup('<a href="#{}">Section {}</a>').format(target, context["outline"]["numbers"][target])

    return {**_elements(escape, Markup, strong=("<strong>", "</strong>"), code=("<code>", "</code>"),
                        item=("<li>", "</li>\n"), itemize=("<ul>\n", "\n</ul>"),
                        note=('<p class="note">', "</p>\n")),
            "math": math_html,
            "section_ref": section_ref,
            "linked": lambda text, path, title: Markup(html_link(text, path, title)),
            "table_ref": lambda number: Markup('<a href="#t{0}">Table {0}</a>').format(int(number)),
            "linebreak": lambda: Markup("<br>")}


def load_outline(path: str, shown: dict[str, bool] | None = None) -> dict:
    """templates/outline.yaml with every section numbered as LaTeX numbers it (1, 1.1, 1.1.1; the appendix A, A.1):
    the HTML report shows these numbers, and section_ref links use them. A section with `when: NAME` is left out
    unless shown[NAME] is true (sweeps: only when a sweep has been run)."""
    import yaml

    data = yaml.safe_load(Path(path).read_text())
    numbers: dict[str, str] = {}
    outline = {}
    for part, first in (("sections", 1), ("appendix", "A")):
        counters: list = []
        sections = []
        for section in data[part]:
            if section.get("when") and not (shown or {}).get(section["when"]):
                continue
            level = section["level"]
            counters = counters[:level]
            if len(counters) < level:
                counters += [0] * (level - len(counters))
            counters[level - 1] += 1
            head = counters[0] if first == 1 else chr(ord("A") + counters[0] - 1)
            number = ".".join([str(head)] + [str(c) for c in counters[1:]])
            content = [{"prose": None, "list": None, "note": None, "tables": None, "block": None, **item}
                       for item in section.get("content", [])]
            sections.append({"id": None, **section, "number": number, "content": content})
            if section.get("id"):
                numbers[section["id"]] = number
        outline[part] = sections
    outline["numbers"] = numbers
    return outline


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
