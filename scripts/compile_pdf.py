"""Rule pdf: latexmk (pdflatex, shell escape off) turns report/report.tex into report/report.pdf."""
import shutil
import subprocess
from pathlib import Path

from qrepro.report.pdf import latexmk_command
from qrepro.runlog import log_to

inp, out = snakemake.input, snakemake.output  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    missing = [tool for tool in ("latexmk", "pdflatex") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"{' and '.join(missing)} not found: the PDF needs TeX Live. On Debian/Ubuntu run `bash install.sh` "
            "(or apt-get install latexmk texlive-latex-base texlive-latex-recommended texlive-fonts-recommended); "
            "with conda, `conda env create -f environment.yml`. `snakemake html` builds the report without TeX.")
    tex = Path(inp.tex)
    result = subprocess.run(latexmk_command(tex), cwd=tex.parent, capture_output=True, text=True)
    print(result.stdout[-20000:])
    print(result.stderr[-5000:])
    if result.returncode != 0:
        raise RuntimeError(f"latexmk failed on {tex} (exit {result.returncode}); see the log above")
