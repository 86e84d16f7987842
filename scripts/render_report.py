"""Rule render: one Jinja2 context → report/report.tex and report/report.html."""
from pathlib import Path

from qrepro.report import render as R
from qrepro.report.claims import Run, verdicts
from qrepro.report.context import build_context, figure, provenance, table_entry, verify_manifest
from qrepro.report.store import MetricStore, read_json
from qrepro.runlog import log_to

inp, out = snakemake.input, snakemake.output  # noqa: F821
p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    manifest = verify_manifest(inp.manifest)
    metrics = MetricStore.load(list(inp.metrics))
    this_run = Run.from_metrics("this run", metrics, p.run)
    reference = None
    if p.reference:
        origin = read_json(inp.reference_provenance[0])
        reference_run = Run.from_metrics(Path(p.reference).name, MetricStore.load(list(inp.reference_metrics)),
                                         origin["run"])
        reference = {"label": reference_run.label, "dir": p.reference, "provenance": origin,
                     "description": reference_run.describe(), "random_weights": origin["run"]["init"] == "random"}
    else:
        reference_run = None
    claims = verdicts(inp.claims, this_run, reference_run)
    if reference:
        reference["judges"] = any(reference_run.label in c["basis"] and c["verdict"] != "not comparable" for c in claims)
    tables = [table_entry(t, inp.tables) for t in read_json(inp.tables)]
    figures = {"figure1": figure(inp.figure1_png, inp.figure1_pdf), "figure2": figure(inp.figure2_png, inp.figure2_pdf)}
    hyperparameters = {"full": read_json(inp.hp_full), "qlora": read_json(inp.hp_qlora)}
    context = build_context(metrics=metrics, tables=tables, figures=figures, claims=claims, run=p.run,
                            hyperparameters=hyperparameters, paper=p.paper, reference=reference,
                            provenance=provenance(git_commit=p.git_commit, config_digest=p.config_digest,
                                                  manifest=manifest, m=metrics))
    if hasattr(out, "tex"):
        R.render(R.latex_environment(p.template_dir), "report.tex.j2", context, out.tex)
    if hasattr(out, "html"):
        R.render(R.html_environment(p.template_dir), "report.html.j2", context, out.html)
