"""Jinja2 rendering of the report: one context, a LaTeX template and an HTML template, and the prose both show,
written once (templates/prose.j2) and rendered per format with that format's escaping and markup."""
from __future__ import annotations

import html
from functools import partial
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2.lexer import Token
from markupsafe import Markup

from qrepro.report.markup import (PAPER_VALUES, RawLatex, html_markup, latex_markup, html_link, latex_breakable,
                                  latex_escape, metric_title, paper_title)
from qrepro.report.numbers import Values


def latex_environment(template_dir: str) -> jinja2.Environment:
    """LaTeX-safe delimiters (\\VAR{...}, \\BLOCK{...}); every value is escaped unless it is RawLatex."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir), undefined=jinja2.StrictUndefined, autoescape=False,
        block_start_string=r"\BLOCK{", block_end_string="}", variable_start_string=r"\VAR{", variable_end_string="}",
        comment_start_string=r"\#{", comment_end_string="}", line_statement_prefix="%%", line_comment_prefix="%#",
        trim_blocks=True, lstrip_blocks=True, finalize=latex_escape, keep_trailing_newline=True)
    env.extend(prose_environment=_prose_environment(template_dir, escape_text=latex_escape, as_safe=RawLatex,
                                                    markup=latex_markup(), autoescape=False, finalize=latex_escape))
    env.filters["raw"] = RawLatex  # the output of the template's own macros, already LaTeX
    env.filters["breakable"] = latex_breakable  # paths and hashes
    env.filters["latex_command"] = lambda name: RawLatex("\\" + name)
    return env


def html_environment(template_dir: str) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(template_dir), undefined=jinja2.StrictUndefined,
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.extend(prose_environment=_prose_environment(template_dir, escape_text=partial(html.escape, quote=False),
                                                    as_safe=Markup, markup=html_markup(), autoescape=True))
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
        """The one link helper's link (qrepro.report.markup): to the file, titled with its method and inputs."""
        scope, metric = key.split("/")
        record, path = self.values.m.record(scope, metric), self.values.m.paths[(scope, metric)]
        return Markup(html_link(text, path, metric_title(path, record, field, shown) + extra))

    def f(self, key: str, form: str, scale: float = 1) -> Markup:
        return self._link(key, self.values.f(key, form, scale))

    def size(self, key: str, form: str) -> Markup:
        return self._link(key, self.values.size(key, form))

    def bound(self, key: str, side: str, form: str, entry: str | None = None) -> Markup:
        interval = self.values.interval_of(key, entry)
        field = f"details.{entry}" if entry else "interval"
        return self._link(key, self.values.bound(key, side, form, entry), f"{field}.{side}", interval[side],
                          f" Interval ({interval['level']:.0%}): {interval['method']}")

    def detail(self, key: str, entry: str, form: str = "text", scale: float = 1):
        text = self.values.detail(key, entry, form, scale)
        if form == "text":
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

    def nested(self, key: str, entry: str, form: str, scale: float = 1) -> Markup:
        return self._link(key, self.values.nested(key, entry, form, scale), f"details.{entry}",
                          self.values.nested_value(key, entry))


class LinkedPaperValues:
    """The paper's numbers in the HTML report: each names its paper/paper_values.yaml entry."""

    def __init__(self, paper_values):
        self.paper_values = paper_values

    def __getattr__(self, name):
        return getattr(self.paper_values, name)

    def f(self, key: str, form: str) -> Markup:
        return Markup(html_link(self.paper_values.f(key, form), PAPER_VALUES, paper_title(self.paper_values.paper[key]),
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


def _prose_environment(template_dir: str | None, *, escape_text, as_safe, markup: dict,
                       **options) -> jinja2.Environment:
    from qrepro.report.numbers import fmt

    loader = jinja2.FileSystemLoader(template_dir) if template_dir else None
    env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             extensions=[_PlainText], **options)
    env.extend(escape_text=escape_text, as_safe=as_safe)
    env.globals.update(markup, fmt=fmt, inline=_inline)
    env.filters["formatted"] = as_safe  # a phrase another macro wrote is already in the format: not escaped again
    return env


@jinja2.pass_context
def _inline(context, source: str, v=None) -> str:
    """A text the catalogue holds (a claim's evidence), written in the prose language, rendered here in this format:
    its literal text escaped, its numbers read from v (default: this run's) and linked as the prose's are."""
    env = context.environment
    names = {"v": context["v"] if v is None else v, "pv": context["pv"]}
    return env.as_safe(env.from_string(" ".join(source.split())).render(**names))


# Texts outside the report's two formats (table captions and row labels, claim statements: plain text that the
# tables and the report template escape where they show it), in the same prose language.
_PLAIN = _prose_environment(None, escape_text=str, as_safe=str, markup={})


def text_reads(source: str) -> list[tuple[str, str, tuple]]:
    """What a text in the prose language reads, from its syntax tree: (object, method, constant arguments) of each call
    on v or pv, e.g. ("v", "f", ("comparison/x", "f2"))."""
    from jinja2 import nodes

    calls = _PLAIN.parse(source).find_all(nodes.Call)
    return [(call.node.node.name, call.node.attr, tuple(a.value for a in call.args if isinstance(a, nodes.Const)))
            for call in calls if isinstance(call.node, nodes.Getattr) and isinstance(call.node.node, nodes.Name)
            and call.node.node.name in ("v", "pv")]


def render_text(source: str, **names) -> str:
    """A catalogue text in the prose language as plain text: v (Values), pv (PaperValues), reference (a run's name);
    whitespace collapsed (texts are written folded in YAML)."""
    return _PLAIN.from_string(" ".join(source.split())).render(**names)


