"""Rule render: one Jinja2 context → report/report.tex and report/report.html."""
from pathlib import Path

from qrepro.metrics_io import MetricStore, read_json
from qrepro.paper import load_paper_values
from qrepro.report import render
from qrepro.report.outline import load_outline
from qrepro.report.claims import REFERENCE, Run, reasons, verdicts
from qrepro.report.context import build_context, figure, provenance, table_entry, verify_manifest
from qrepro.report.numbers import Values
from qrepro.report.sweeps import sweep_context
from qrepro.runlog import git_commit, log_to

inp, out = snakemake.input, snakemake.output  # noqa: F821
p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    manifest = verify_manifest(inp.manifest)
    metrics = MetricStore.load(list(inp.metrics))
    paper_values = load_paper_values(inp.paper_values)
    this_run = Run.from_metrics("this run", metrics, p.run)
    reference = reference_run = None
    if p.reference:
        origin = read_json(inp.reference_provenance[0])
        reference_metrics = MetricStore.load(list(inp.reference_metrics))
        reference_run = Run.from_metrics(Path(p.reference).name, reference_metrics, origin["run"])
        reference = {"label": reference_run.label, "dir": p.reference, "provenance": origin,
                     "facts": reference_run.facts(), "v": Values(reference_metrics),
                     "random_weights": origin["run"]["init"] == "random"}
    claims = verdicts(inp.claims, paper_values, this_run, reference_run)
    if reference:
        reference["judges"] = any(c["basis"]["kind"] == REFERENCE and c["verdict"] != "not comparable" for c in claims)
    tables = [table_entry(t, inp.tables) for t in read_json(inp.tables)]
    figures = {"figure1": figure(inp.figure1_png, inp.figure1_pdf), "figure2": figure(inp.figure2_png, inp.figure2_pdf),
               "figure3": figure(inp.figure3_png, inp.figure3_pdf)}
    hyperparameters = {"full": read_json(inp.hp_full), "qlora": read_json(inp.hp_qlora)}
    sweeps = [sweep_context(entry) for entry in p.sweeps]  # the finished sweeps: none unless `snakemake sweep` ran
    context = build_context(metrics=metrics, tables=tables, figures=figures, claims=claims,
                            claim_reasons=reasons(claims), run=p.run,
                            hyperparameters=hyperparameters, paper_setup=p.paper, paper_values=paper_values,
                            reference=reference, outline=load_outline(inp.outline, {"sweeps": bool(sweeps)}),
                            radar_standard=p.radar_standard, sweeps=sweeps,
                            provenance=provenance(git_commit=git_commit(), config_digest=p.config_digest,
                                                  manifest=manifest, m=metrics))
    if hasattr(out, "tex"):
        render.render(render.latex_environment(p.template_dir), "report.tex.j2", context, out.tex)
    if hasattr(out, "html"):
        render.render(render.html_environment(p.template_dir), "report.html.j2", context, out.html)
