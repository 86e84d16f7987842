"""The PDF: latexmk with pdflatex, shell escape off (a value in the report can never run a command)."""
from __future__ import annotations

from pathlib import Path


def latexmk_command(tex: Path) -> list[str]:
    """latexmk over tex, run in its folder: pdflatex without shell escape (\\write18 is refused), stopping at the first
    error."""
    return ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
            "-pdflatex=pdflatex -no-shell-escape -interaction=nonstopmode -halt-on-error %O %S",
            f"-outdir={tex.parent.resolve()}", tex.name]
