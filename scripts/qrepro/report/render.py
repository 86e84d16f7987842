"""Jinja2 rendering of the report: one context, a LaTeX template and an HTML template."""
from __future__ import annotations

import re
from pathlib import Path

import jinja2
from markupsafe import Markup

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}", "×": r"$\times$", "²": r"\textsuperscript{2}",
    "—": "---", "–": "--", "→": r"$\rightarrow$", "≤": r"$\leq$", "≥": r"$\geq$",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIALS))


class RawLatex(str):
    """LaTeX that was produced safely elsewhere (pandas Styler with escape='latex'); not escaped again."""


def latex_escape(value) -> str:
    if isinstance(value, RawLatex):
        return value
    return _LATEX_RE.sub(lambda match: _LATEX_SPECIALS[match.group()], str(value))


def latex_environment(template_dir: str) -> jinja2.Environment:
    """LaTeX-safe delimiters (\\VAR{...}, \\BLOCK{...}); every value is escaped unless it is RawLatex."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir), undefined=jinja2.StrictUndefined, autoescape=False,
        block_start_string=r"\BLOCK{", block_end_string="}", variable_start_string=r"\VAR{", variable_end_string="}",
        comment_start_string=r"\#{", comment_end_string="}", line_statement_prefix="%%", line_comment_prefix="%#",
        trim_blocks=True, lstrip_blocks=True, finalize=latex_escape, keep_trailing_newline=True)


def html_environment(template_dir: str) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(template_dir), undefined=jinja2.StrictUndefined,
                              autoescape=True, trim_blocks=True, lstrip_blocks=True)


def render(env: jinja2.Environment, template: str, context: dict, out_path: str) -> None:
    text = env.get_template(template).render(**context)
    tmp = Path(out_path).with_suffix(Path(out_path).suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(out_path)


def html_safe(fragment: str) -> Markup:
    """A fragment pandas already escaped (Styler.format(escape='html'))."""
    return Markup(fragment)
