"""Rule tables: the tables of paper/metrics.yaml as CSV (audit), LaTeX (booktabs) and HTML under results/tables/."""
import json
from pathlib import Path

from qrepro.metrics_io import MetricStore, read_json
from qrepro.paper import load_paper_values
from qrepro.report.tables import Sources, build_tables, write_table
from qrepro.runlog import log_to

inp, out = snakemake.input, snakemake.output  # noqa: F821
p = snakemake.params  # noqa: F821
with log_to(snakemake.log[0]):  # noqa: F821
    hp_files = {"full": inp.hp_full, "qlora": inp.hp_qlora}
    sources = Sources(MetricStore.load(list(inp.metrics) + list(inp.probe)),
                      {v: read_json(f) for v, f in hp_files.items()}, hp_files)
    reference = Sources(MetricStore.load(list(inp.reference_metrics))) if p.reference else None
    paper = load_paper_values(inp.paper_values)
    tables = build_tables(p.tables, sources, paper, reference, Path(p.reference).name if p.reference else None)
    index = []
    for table in tables:
        stem = Path(p.tables_dir) / f"table{table.number:02d}"
        value_columns = write_table(table, paper, f"{stem}.csv", f"{stem}.tex", f"{stem}.html")
        index.append({"number": table.number, "caption": table.caption, "value_columns": value_columns,
                      "csv": f"{stem}.csv", "tex": f"{stem}.tex", "html": f"{stem}.html"})
    Path(out.index).write_text(json.dumps(index, indent=2) + "\n")
