"""Rule render: one Jinja2 context → report/report.tex and report/report.html."""
from qrepro import render as R
from qrepro.collect import MetricStore, read_json
from qrepro.report_context import build_context, figure, provenance, table_entry, verify_manifest
from qrepro.runlog import log_to

inp, out = snakemake.input, snakemake.output  # noqa: F821
p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    manifest = verify_manifest(inp.manifest)
    metrics = MetricStore.load(list(inp.metrics))
    tables = [table_entry(t, inp.tables) for t in read_json(inp.tables)]
    figures = {"figure1": figure(inp.figure1_png, inp.figure1_pdf), "figure2": figure(inp.figure2_png, inp.figure2_pdf)}
    context = build_context(metrics=metrics, tables=tables, figures=figures, claims_path=inp.claims, run=p.run,
                            provenance=provenance(git_commit=p.git_commit, config_digest=p.config_digest,
                                                  manifest=manifest, m=metrics),
                            paper_scale=p.paper_scale)
    if hasattr(out, "tex"):
        R.render(R.latex_environment(p.template_dir), "report.tex.j2", context, out.tex)
    if hasattr(out, "html"):
        R.render(R.html_environment(p.template_dir), "report.html.j2", context, out.html)
